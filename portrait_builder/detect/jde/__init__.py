"""JDE (Towards Real-Time Multi-Object Tracking): the network, its checkpoints, the detector backend and training."""

from portrait_builder.detect.jde.model import (
    ANCHORS,
    PUBLISHED_SIZES,
    JDENet,
    build_jde_net,
    decode_head,
    decode_outputs,
    load_jde_checkpoint,
    resolve_arch,
)

__all__ = [
    "ANCHORS",
    "PUBLISHED_SIZES",
    "JDENet",
    "build_jde_net",
    "decode_head",
    "decode_outputs",
    "load_jde_checkpoint",
    "resolve_arch",
]
