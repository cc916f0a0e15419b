"""The JDE network (Wang et al., ECCV 2020): Darknet-53 plus three joint detection-and-embedding heads.

The module layout reproduces the published checkpoints' state-dict keys
(``module_list.{i}.conv_{i}.weight`` ...), so ``jde.1088x608.uncertainty.pt`` and its siblings load with
``strict=True``. A lighter variant with the same heads and outputs ("tiny-WxH") shares the code.

In eval mode ``forward(x)`` returns the published (B, N, 6 + E) tensor ``[xc, yc, w, h, score, 0, emb]``
(rows: stride 32, 16, 8; within a stride by anchor, then row, then column). ``forward_heads`` returns the
raw head maps, which the loss and the fast detector path decode themselves.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from portrait_builder.errors import UserError

NUM_ANCHORS = 4
BOX_CHANNELS = NUM_ANCHORS * 6  # per anchor: dx, dy, dw, dh, c0, c1

#: Published anchors (w, h in input pixels) per input size, ordered stride 32, 16, 8.
ANCHORS: dict[str, tuple[tuple[tuple[float, float], ...], ...]] = {
    "1088x608": (
        ((128, 384), (180, 540), (256, 640), (512, 640)),
        ((32, 96), (45, 135), (64, 192), (90, 271)),
        ((8, 24), (11, 34), (16, 48), (23, 68)),
    ),
    "864x480": (
        ((102, 305), (143, 429), (203, 508), (407, 508)),
        ((25, 76), (36, 107), (51, 152), (71, 215)),
        ((6, 19), (9, 27), (13, 38), (18, 54)),
    ),
    "576x320": (
        ((85, 255), (120, 360), (170, 420), (340, 320)),
        ((21, 64), (30, 90), (43, 128), (60, 180)),
        ((6, 16), (8, 23), (11, 32), (16, 45)),
    ),
}
PUBLISHED_SIZES = tuple(ANCHORS)
STRIDES = (32, 16, 8)
#: Initial values of the learnable loss-uncertainty scalars (JDE.md).
INIT_S_C, INIT_S_R, INIT_S_ID = -4.15, -4.85, -2.3


@dataclass(frozen=True)
class JDEArch:
    """Everything that varies between the published network and the light variant."""

    name: str
    width: int  # input width in pixels (multiple of 32)
    height: int
    anchors: tuple[tuple[tuple[float, float], ...], ...]  # stride 32, 16, 8
    backbone_channels: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)
    backbone_blocks: tuple[int, ...] = (1, 2, 8, 8, 4)
    head_widths: tuple[int, ...] = (512, 256, 128)  # the 1x1 width of each head; its 3x3 is twice that
    embedding_dim: int = 512

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def num_rows(self) -> int:
        """N, the number of output rows: sum over strides of anchors x grid cells."""
        return sum(NUM_ANCHORS * (self.width // s) * (self.height // s) for s in STRIDES)


def _parse_wh(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m:
        raise UserError(f"bad JDE size {text!r}: expected WIDTHxHEIGHT, e.g. 1088x608")
    w, h = int(m.group(1)), int(m.group(2))
    if w % 32 or h % 32 or w <= 0 or h <= 0:
        raise UserError(f"bad JDE size {text!r}: width and height must be positive multiples of 32")
    return w, h


def resolve_arch(size: str, embedding_dim: int | None = None) -> JDEArch:
    """The architecture for a size name.

    ``"1088x608"``, ``"864x480"``, ``"576x320"``: the published network with its anchors.
    ``"tiny-WxH"`` (W, H multiples of 32, e.g. ``tiny-576x320``, ``tiny-320x192``): a Darknet with a quarter
    of the channels and fewer residual blocks, the same three heads, anchors of 576x320 scaled to WxH and a
    128-d embedding unless ``embedding_dim`` says otherwise.
    """
    if size in ANCHORS:
        return JDEArch(size, *_parse_wh(size), ANCHORS[size], embedding_dim=embedding_dim or 512)
    if size.startswith("tiny-"):
        w, h = _parse_wh(size[5:])
        sx, sy = w / 576, h / 320  # anchors are box sizes in input pixels: scale them with the input
        anchors = tuple(tuple((round(aw * sx, 2), round(ah * sy, 2)) for aw, ah in level) for level in ANCHORS["576x320"])
        return JDEArch(
            size, w, h, anchors,
            backbone_channels=(8, 16, 32, 64, 128, 256),
            backbone_blocks=(1, 1, 2, 2, 1),
            head_widths=(128, 64, 32),
            embedding_dim=embedding_dim or 128,
        )
    valid = ", ".join(PUBLISHED_SIZES) + ", tiny-WxH (e.g. tiny-576x320)"
    raise UserError(f"unknown JDE size/arch {size!r}; valid: {valid}")


# ----------------------------------------------------------------------------- layer spec
# Each layer is a dict: type conv (k, s, bn, out) | shortcut (src) | route (srcs) | upsample | yolo (level).
# Indices are absolute, as in the published cfg, so module_list indices equal the published ones.


def layer_spec(arch: JDEArch) -> list[dict]:
    spec: list[dict] = []

    def conv(out: int, k: int, s: int = 1, bn: bool = True) -> int:
        spec.append({"type": "conv", "k": k, "s": s, "bn": bn, "out": out})
        return len(spec) - 1

    c = arch.backbone_channels
    conv(c[0], 3)
    stage_out = []
    for stage, blocks in enumerate(arch.backbone_blocks):
        conv(c[stage + 1], 3, 2)
        for _ in range(blocks):
            conv(c[stage + 1] // 2, 1)
            conv(c[stage + 1], 3)
            spec.append({"type": "shortcut", "src": len(spec) - 3})
        stage_out.append(len(spec) - 1)
    skip = {1: stage_out[3], 2: stage_out[2]}  # stride 16 and stride 8 backbone outputs (61 and 36 in Darknet-53)

    prev_fifth = None
    for level, w in enumerate(arch.head_widths):
        if level > 0:
            spec.append({"type": "route", "srcs": [prev_fifth]})
            conv(w, 1)
            spec.append({"type": "upsample"})
            spec.append({"type": "route", "srcs": [len(spec) - 1, skip[level]]})
        for i in range(5):
            conv(w if i % 2 == 0 else 2 * w, 1 if i % 2 == 0 else 3)
        fifth = len(spec) - 1
        conv(2 * w, 3)
        box = conv(BOX_CHANNELS, 1, bn=False)
        spec.append({"type": "route", "srcs": [fifth]})
        emb = conv(arch.embedding_dim, 3, bn=False)
        spec.append({"type": "route", "srcs": [box, emb]})
        spec.append({"type": "yolo", "level": level})
        prev_fifth = fifth
    return spec


class YOLOLayer(nn.Module):
    """Holds the learnable loss-uncertainty scalars of one scale (s_c, s_r, s_id, as in the checkpoints)."""

    def __init__(self):
        super().__init__()
        self.s_c = nn.Parameter(torch.full((1,), INIT_S_C))
        self.s_r = nn.Parameter(torch.full((1,), INIT_S_R))
        self.s_id = nn.Parameter(torch.full((1,), INIT_S_ID))


class JDENet(nn.Module):
    """Darknet + three JDE heads. ``classifier`` (nID identities) exists only for training."""

    def __init__(self, arch: JDEArch, nID: int | None = None):
        super().__init__()
        self.arch = arch
        self.spec = layer_spec(arch)
        self.module_list = nn.ModuleList()
        channels: list[int] = []
        ch_in = 3
        for i, layer in enumerate(self.spec):
            block = nn.Sequential()
            t = layer["type"]
            if t == "conv":
                block.add_module(f"conv_{i}", nn.Conv2d(ch_in, layer["out"], layer["k"], layer["s"], (layer["k"] - 1) // 2, bias=not layer["bn"]))
                if layer["bn"]:
                    block.add_module(f"batch_norm_{i}", nn.BatchNorm2d(layer["out"], momentum=0.1))
                    block.add_module(f"leaky_{i}", nn.LeakyReLU(0.1))
                out = layer["out"]
            elif t == "shortcut":
                out = channels[-1]
            elif t == "route":
                out = sum(channels[s] for s in layer["srcs"])
            elif t == "upsample":
                out = channels[-1]
            elif t == "yolo":
                block.add_module(f"yolo_{i}", YOLOLayer())
                out = channels[-1]
            else:  # pragma: no cover - the spec is ours
                raise AssertionError(t)
            self.module_list.append(block)
            channels.append(out)
            ch_in = out
        self.yolo_indices = [i for i, layer in enumerate(self.spec) if layer["type"] == "yolo"]
        self.classifier = nn.Linear(arch.embedding_dim, nID) if nID else None
        # Fixed scale on normalised embeddings before the classifier (as published: sqrt(2) log(nID - 1)).
        self.emb_scale = math.sqrt(2) * math.log(nID - 1) if nID and nID > 1 else 1.0
        self.register_buffer("_anchors", torch.tensor(arch.anchors, dtype=torch.float32), persistent=False)

    @property
    def embedding_dim(self) -> int:
        return self.arch.embedding_dim

    def forward_heads(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Raw head maps, one per stride (32, 16, 8): (B, 24 + E, H/s, W/s)."""
        outputs: list[torch.Tensor] = []
        heads: list[torch.Tensor] = []
        for layer, block in zip(self.spec, self.module_list, strict=True):
            t = layer["type"]
            if t == "conv":
                x = block(x)
            elif t == "shortcut":
                x = x + outputs[layer["src"]]
            elif t == "route":
                srcs = layer["srcs"]
                x = outputs[srcs[0]] if len(srcs) == 1 else torch.cat([outputs[s] for s in srcs], 1)
            elif t == "upsample":
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            elif t == "yolo":
                heads.append(x)
            outputs.append(x)
        return heads

    def forward(self, x: torch.Tensor):
        """Train mode: the raw head maps (for the loss). Eval mode: the decoded (B, N, 6 + E) tensor."""
        heads = self.forward_heads(x)
        if self.training:
            return heads
        return decode_outputs(heads, self._anchors, STRIDES)


# ----------------------------------------------------------------------------- decoding (pure functions)


def split_head(head: torch.Tensor, num_anchors: int = NUM_ANCHORS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split one raw head map (B, 6A + E, H, W) into box deltas (B, A, H, W, 4), confidence logits
    (B, A, H, W, 2) and the embedding map (B, H, W, E). Channel a*6 + k is field k of anchor a."""
    b, _, h, w = head.shape
    p = head[:, : 6 * num_anchors].reshape(b, num_anchors, 6, h, w).permute(0, 1, 3, 4, 2)
    emb = head[:, 6 * num_anchors :].permute(0, 2, 3, 1)
    return p[..., :4], p[..., 4:6], emb


def decode_head(head: torch.Tensor, anchors: torch.Tensor, stride: int) -> torch.Tensor:
    """Decode one raw head map into (B, A*H*W, 6 + E) rows ``[xc, yc, w, h, score, 0, emb]``.

    head: (B, 6A + E, H, W); anchors: (A, 2) (w, h) in input pixels. Rows are ordered anchor, row, column.
    xc = i*stride + dx*aw, yc = j*stride + dy*ah, w = aw*exp(dw), h = ah*exp(dh), score = softmax(c0, c1)[1];
    the embedding is L2-normalised and shared by the cell's anchors.
    """
    deltas, conf, emb = split_head(head, len(anchors))
    b, a, h, w, _ = deltas.shape
    dt = deltas.dtype
    jj, ii = torch.meshgrid(torch.arange(h, device=head.device, dtype=dt), torch.arange(w, device=head.device, dtype=dt), indexing="ij")
    aw = anchors[:, 0].to(dt).view(1, a, 1, 1)
    ah = anchors[:, 1].to(dt).view(1, a, 1, 1)
    xc = ii * stride + deltas[..., 0] * aw
    yc = jj * stride + deltas[..., 1] * ah
    bw = aw * torch.exp(deltas[..., 2])
    bh = ah * torch.exp(deltas[..., 3])
    score = torch.softmax(conf, dim=-1)[..., 1]
    emb = F.normalize(emb, dim=-1).unsqueeze(1).expand(b, a, h, w, emb.shape[-1])
    zero = torch.zeros_like(score)
    rows = torch.cat([torch.stack([xc, yc, bw, bh, score, zero], dim=-1), emb], dim=-1)
    return rows.reshape(b, a * h * w, -1)


def decode_outputs(heads: list[torch.Tensor], anchors: torch.Tensor, strides=STRIDES) -> torch.Tensor:
    """All scales: (B, N, 6 + E), stride 32 rows first. anchors: (3, A, 2) in the order of ``heads``."""
    return torch.cat([decode_head(h, anchors[k], s) for k, (h, s) in enumerate(zip(heads, strides, strict=True))], dim=1)


def decode_confident(heads: list[torch.Tensor], anchors: torch.Tensor, conf_thres: float, strides=STRIDES):
    """The rows of :func:`decode_outputs` whose score exceeds ``conf_thres``, without materialising the rest.

    Returns per image a tuple (boxes_cxcywh (K, 4), scores (K,), embeddings (K, E)), in output-row order.
    Embeddings are gathered per kept row only, which saves the (B, N, E) tensor (112 MB per 1088x608 frame).
    """
    per_image: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in range(heads[0].shape[0])]
    for k, (head, stride) in enumerate(zip(heads, strides, strict=True)):
        deltas, conf, emb = split_head(head, anchors.shape[1])
        score = torch.softmax(conf.float(), dim=-1)[..., 1]  # (B, A, H, W)
        keep = score > conf_thres
        bi, ai, jj, ii = keep.nonzero(as_tuple=True)
        d = deltas[bi, ai, jj, ii].float()
        anc = anchors[k].to(d.device)[ai]
        xc = ii.float() * stride + d[:, 0] * anc[:, 0]
        yc = jj.float() * stride + d[:, 1] * anc[:, 1]
        bw = anc[:, 0] * torch.exp(d[:, 2])
        bh = anc[:, 1] * torch.exp(d[:, 3])
        boxes = torch.stack([xc, yc, bw, bh], 1)
        e = F.normalize(emb[bi, jj, ii].float(), dim=-1)
        s = score[bi, ai, jj, ii]
        for b in range(len(per_image)):
            m = bi == b
            per_image[b].append((boxes[m], s[m], e[m]))
    out = []
    for parts in per_image:
        out.append(tuple(torch.cat([p[i] for p in parts]) for i in range(3)))
    return out


# ----------------------------------------------------------------------------- building and loading


def build_jde_net(size: str = "1088x608", nID: int | None = None, embedding_dim: int | None = None) -> JDENet:
    """The JDE network for ``size`` (``1088x608``, ``864x480``, ``576x320`` or ``tiny-WxH``).

    ``nID``: number of training identities; ``None`` omits the classifier (inference).
    """
    return JDENet(resolve_arch(size, embedding_dim), nID=nID)


def _describe_mismatch(model: JDENet, sd: dict) -> str | None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in sd.items()}
    missing = sorted(set(expected) - set(got), key=_key_order)
    unexpected = sorted(set(got) - set(expected), key=_key_order)
    wrong = sorted((k for k in set(expected) & set(got) if expected[k] != got[k]), key=_key_order)
    if not (missing or unexpected or wrong):
        return None
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            parts.append(f"{label} {len(keys)} keys: " + ", ".join(keys[:4]) + (" ..." if len(keys) > 4 else ""))
    if wrong:
        parts.append(
            f"{len(wrong)} shapes differ: "
            + ", ".join(f"{k} {list(got[k])} vs expected {list(expected[k])}" for k in wrong[:3])
            + (" ..." if len(wrong) > 3 else "")
        )
    return "; ".join(parts)


def _key_order(key: str):
    m = re.match(r"module_list\.(\d+)\.", key)
    return (int(m.group(1)) if m else 10**6, key)


def read_state_dict(path: str | Path) -> tuple[dict, dict]:
    """``(state_dict, extra)`` from a published-layout checkpoint ``{'epoch', 'model', 'optimizer'}``
    or a bare state dict, loaded with ``weights_only=True``. Raises UserError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"JDE weights not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not a PyTorch checkpoint loadable with weights_only=True ({first[:160]})") from None
    extra: dict = {}
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        extra = {k: v for k, v in obj.items() if k != "model"}
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path} is not a JDE checkpoint: expected {{'model': state_dict, ...}} or a state dict of tensors")
    # Checkpoints saved from nn.DataParallel carry a "module." prefix.
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj, extra


def load_jde_checkpoint(path: str | Path, size: str | None = None, *, keep_classifier: bool = False,
                        embedding_dim: int | None = None) -> JDENet:
    """Build the network for ``size`` and load ``path`` strictly (classifier dropped unless ``keep_classifier``).

    ``size=None`` takes the ``'arch'`` entry our trainer writes into its checkpoints, else ``1088x608``.

    A missing file, a file that is not a checkpoint, and mismatched keys or shapes each raise one UserError
    that says what is wrong (for a shape mismatch it also guesses the checkpoint's input size).
    """
    sd, extra = read_state_dict(path)
    if size is None:
        size = str(extra.get("arch") or "1088x608")
    classifier = {k: v for k, v in sd.items() if k.startswith("classifier.")}
    sd = {k: v for k, v in sd.items() if not k.startswith("classifier.")}
    if embedding_dim is None:
        emb_key = _emb_key(resolve_arch(size))
        if emb_key in sd and sd[emb_key].ndim == 4:
            embedding_dim = int(sd[emb_key].shape[0])
    nID = int(classifier["classifier.weight"].shape[0]) if keep_classifier and "classifier.weight" in classifier else None
    model = build_jde_net(size, nID=nID, embedding_dim=embedding_dim)
    if nID:
        sd.update(classifier)
    problem = _describe_mismatch(model, sd)
    if problem:
        hint = _guess_size(sd)
        hint = f" (checkpoint is for {hint}?)" if hint else ""
        raise UserError(f"{path} does not match the JDE {size} network{hint}: {problem}")
    model.load_state_dict(sd, strict=True)
    model.checkpoint_info = {k: v for k, v in extra.items() if k in ("epoch", "arch", "size", "embedding_dim")}
    return model


def _emb_key(arch: JDEArch) -> str:
    spec = layer_spec(arch)
    i = [i for i, layer in enumerate(spec) if layer["type"] == "yolo"][0] - 2
    return f"module_list.{i}.conv_{i}.weight"


def _guess_size(sd: dict) -> str | None:
    """The published or tiny size whose key set matches ``sd`` (shapes do not depend on the input size,
    so only the architecture can be told apart; the published sizes share one key table)."""
    keys = set(sd)
    for name, label in (("1088x608", "a published Darknet-53 JDE (1088x608, 864x480 or 576x320)"), ("tiny-576x320", "a tiny-WxH variant")):
        with torch.device("meta"):  # keys only: no memory, no initialisation
            candidate = build_jde_net(name)
        if set(candidate.state_dict()) == keys:
            return label
    return None
