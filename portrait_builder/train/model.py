"""The multi-task Portrait Interpretation network: a timm backbone, the feature space split and a
BNNeck classifier per task.

Feature space split (our reading of the paper's Fig. 6): the backbone's D-dim feature is cut into
one slice per aspect (appearance / posture / emotion), sized in proportion to the number of tasks
("labels") of the aspect. Inside the appearance slice, gender/age/physique/height get disjoint
slices sized in proportion to their number of classes, together ``appearance_attr_fraction`` of it;
the rest is unassigned, and re-id uses the whole appearance slice. In an aspect with several tasks
and no identity (posture), ``posture_shared_fraction`` of the slice is shared by all of them and
the rest is split between them in proportion to their classes, laid out own|shared|own so that
with two tasks each one reads a contiguous range.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from portrait_builder.errors import UserError
from portrait_builder.train.config import TrainConfig
from portrait_builder.train.data import Task

log = logging.getLogger(__name__)


def _proportional(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` (largest remainder), each >= 1."""
    if total < len(weights):
        raise ValueError(f"cannot split {total} dims into {len(weights)} non-empty slices")
    wsum = float(sum(weights))
    raw = [total * w / wsum for w in weights]
    parts = [max(1, int(r)) for r in raw]
    order = sorted(range(len(weights)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    i = 0
    while sum(parts) < total:
        parts[order[i % len(order)]] += 1
        i += 1
    while sum(parts) > total:  # only when the max(1, .) floor overshot
        j = max(range(len(parts)), key=lambda k: parts[k])
        parts[j] -= 1
    return parts


def split_feature_space(
    dim: int, tasks: list[Task], appearance_attr_fraction: float = 0.5, posture_shared_fraction: float = 0.5
) -> dict[str, list[int]]:
    """Feature indices of each task (see the module docstring). Returns {task name: sorted indices}."""
    aspects: OrderedDict[str, list[Task]] = OrderedDict()
    for t in tasks:
        aspects.setdefault(t.aspect, []).append(t)
    sizes = _proportional(dim, [len(ts) for ts in aspects.values()])
    out: dict[str, list[int]] = {}
    start = 0
    for ts, size in zip(aspects.values(), sizes, strict=True):
        stop = start + size
        ident = [t for t in ts if t.kind == "identity"]
        others = [t for t in ts if t.kind != "identity"]
        if ident:
            for t in ident:
                out[t.name] = list(range(start, stop))
            if others:
                assigned = max(len(others), int(round(size * appearance_attr_fraction)))
                parts = _proportional(assigned, [t.num_classes for t in others])
                pos = start
                for t, n in zip(others, parts, strict=True):
                    out[t.name] = list(range(pos, pos + n))
                    pos += n
        elif len(ts) == 1:
            out[ts[0].name] = list(range(start, stop))
        else:
            shared = min(size - len(ts), int(round(size * posture_shared_fraction)))
            own = _proportional(size - shared, [t.num_classes for t in ts])
            # Layout: own_0 | shared | own_1 | own_2 ...: with two tasks both ranges are contiguous.
            pos = start
            own_ranges = []
            for i, n in enumerate(own):
                if i == 1:
                    pos += shared
                own_ranges.append(list(range(pos, pos + n)))
                pos += n
            shared_start = start + own[0]
            shared_idx = list(range(shared_start, shared_start + shared))
            for t, r in zip(ts, own_ranges, strict=True):
                out[t.name] = sorted(r + shared_idx)
        start = stop
    return out


class BNNeck(nn.Module):
    """BatchNorm (no learned shift) then a bias-free linear classifier (Luo et al., "Bag of Tricks")."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        self.bn.bias.requires_grad_(False)
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bn = self.bn(feat)
        return bn, self.classifier(bn)


def create_backbone(name: str) -> nn.Module:
    import timm

    try:
        # pretrained=False always: weights come only from a local file (load_pretrained).
        return timm.create_model(name, pretrained=False, num_classes=0)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise UserError(f"unknown timm backbone {name!r} (see timm.list_models())") from None
        raise


class PortraitNet(nn.Module):
    """Backbone(s) + per-task feature slices + BNNeck heads.

    forward(images (B, 3, H, W)) -> {"features": {task: (B, d_t)}, "bn": {task: (B, d_t)},
    "logits": {task: (B, C_t)}}; features (before BN) feed the metric losses, logits the
    classification losses, and the BN features of the identity task are the re-id descriptor.
    """

    def __init__(self, config: TrainConfig, tasks: list[Task]) -> None:
        super().__init__()
        if not tasks:
            raise UserError("no task to train: the release has neither identities nor attribute columns")
        self.tasks = list(tasks)
        self.architecture = config.architecture
        if self.architecture == "single_task":
            self.backbones = nn.ModuleDict({t.name: create_backbone(config.backbone) for t in tasks})
            dim = next(iter(self.backbones.values())).num_features
            self.split = {t.name: list(range(dim)) for t in tasks}
        else:
            self.backbones = nn.ModuleDict({"shared": create_backbone(config.backbone)})
            dim = self.backbones["shared"].num_features
            if self.architecture == "fss":
                self.split = split_feature_space(dim, tasks, config.appearance_attr_fraction,
                                                 config.posture_shared_fraction)
            else:
                self.split = {t.name: list(range(dim)) for t in tasks}
        self.feature_dim = dim
        for t in tasks:
            self.register_buffer(f"idx_{t.name}", torch.tensor(self.split[t.name], dtype=torch.long),
                                 persistent=False)
        self.necks = nn.ModuleDict({t.name: BNNeck(len(self.split[t.name]), t.num_classes) for t in tasks})

    def _slice(self, name: str, feat: torch.Tensor) -> torch.Tensor:
        idx = getattr(self, f"idx_{name}")
        if idx.numel() == feat.shape[1]:
            return feat
        return feat.index_select(1, idx)

    def forward(self, images: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        if self.architecture == "single_task":
            full = {name: bb(images) for name, bb in self.backbones.items()}
        else:
            shared = self.backbones["shared"](images)
            full = {t.name: shared for t in self.tasks}
        out: dict[str, dict[str, torch.Tensor]] = {"features": {}, "bn": {}, "logits": {}}
        for t in self.tasks:
            f = self._slice(t.name, full[t.name])
            bn, logits = self.necks[t.name](f)
            out["features"][t.name] = f
            out["bn"][t.name] = bn
            out["logits"][t.name] = logits
        return out

    def load_pretrained(self, path: str | Path) -> None:
        """Load local backbone weights (a state dict, or a checkpoint with "state_dict"/"model")."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"pretrained weights not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling error is a bad weights file
            raise UserError(f"cannot load pretrained weights {path}: {str(exc).splitlines()[0]}") from None
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        for bb in self.backbones.values():
            result = bb.load_state_dict(state, strict=False)
            loaded = len(bb.state_dict()) - len(result.missing_keys)
            if loaded == 0:
                raise UserError(f"{path} holds no weights for this backbone (no matching parameter names)")
            log.info("loaded %d backbone tensors from %s (%d missing, %d unexpected)", loaded, path,
                     len(result.missing_keys), len(result.unexpected_keys))
