"""Use a release with other re-id toolkits: torchreid and fast-reid loader classes and their registration.

Their stock Market-1501 loaders parse camera ids 1-6 and person ids up to 1501 from file names, which a
Portrait release does not follow (``c`` is a video ordinal), so these loaders read the release through
``portrait_builder.release.load_release`` (``require_manifest=False``: unversioned folders too).
Both toolkits are imported only when a ``register_*`` function is called.
"""

from portrait_builder.integrations.reid import (
    CAMERA_MODES,
    ReidSplits,
    fastreid_dataset_class,
    register_fastreid,
    register_torchreid,
    reid_splits,
    torchreid_dataset_class,
)

__all__ = [
    "CAMERA_MODES",
    "ReidSplits",
    "fastreid_dataset_class",
    "register_fastreid",
    "register_torchreid",
    "reid_splits",
    "torchreid_dataset_class",
]
