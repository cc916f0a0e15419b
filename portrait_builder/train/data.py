"""Turning a release's annotation rows into training targets, and its crops into a dataset.

Releases are read by :func:`portrait_builder.release.load_release` (the one reader); the tables here
are its ``annotations`` (or ``subset(...)``) frames. "unsure" and null both mean "no label".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from portrait_builder.errors import UserError
from portrait_builder.taxonomy import Taxonomy

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Task:
    """One prediction task: the identity (classes = train person ids) or one taxonomy attribute."""

    name: str
    kind: str  # "identity" | "single" | "multi"
    aspect: str
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "aspect": self.aspect, "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, d: dict) -> Task:
        return cls(d["name"], d["kind"], d["aspect"], tuple(d["classes"]))


def build_tasks(taxonomy: Taxonomy, train_ids: pd.Series) -> list[Task]:
    """The tasks in taxonomy order; the identity task's classes are the train subset's person ids."""
    tasks = []
    for attr in taxonomy.attributes:
        if attr.kind == "identity":
            pids = sorted(int(v) for v in pd.array(train_ids, dtype="Int64").dropna().unique())
            if not pids:
                log.warning("the train subset has no identity labels; training without a re-id task")
                continue
            tasks.append(Task(attr.name, "identity", attr.aspect, tuple(str(p) for p in pids)))
        else:
            tasks.append(Task(attr.name, attr.kind, attr.aspect, attr.classes))
    return tasks


def _identity_column(table: pd.DataFrame) -> np.ndarray:
    return np.asarray(pd.array(table["identity"], dtype="Int64").fillna(-1), dtype=np.int64)


def encode_targets(table: pd.DataFrame, tasks: list[Task]) -> dict[str, torch.Tensor]:
    """Targets per task: (N,) int64 class index for identity/single (-1 = no label),
    (N, C) float32 0/1 for multi-label (rows of -1 = no label)."""
    out: dict[str, torch.Tensor] = {}
    for task in tasks:
        if task.kind == "identity":
            index = {int(c): i for i, c in enumerate(task.classes)}
            ids = _identity_column(table)
            out[task.name] = torch.tensor([index.get(int(v), -1) for v in ids], dtype=torch.long)
        elif task.kind == "single":
            index = {c: i for i, c in enumerate(task.classes)}
            col = table[task.name] if task.name in table else [None] * len(table)
            out[task.name] = torch.tensor([index.get(v, -1) if isinstance(v, str) else -1 for v in col],
                                          dtype=torch.long)
        else:
            index = {c: i for i, c in enumerate(task.classes)}
            col = table[task.name] if task.name in table else [None] * len(table)
            target = torch.full((len(table), task.num_classes), -1.0)
            for row, values in enumerate(col):
                if values is None or (isinstance(values, float) and np.isnan(values)):
                    continue
                names = [values] if isinstance(values, str) else list(values)
                # An empty list, "unsure" or a value the taxonomy lacks means no usable label.
                if not names or any(n not in index for n in names):
                    continue
                target[row] = 0.0
                target[row, [index[n] for n in names]] = 1.0
            out[task.name] = target
    return out


def identity_array(table: pd.DataFrame) -> np.ndarray:
    """(N,) int64 person ids, -1 where null."""
    return _identity_column(table)


def group_array(table: pd.DataFrame) -> np.ndarray:
    """(N,) int64 pHash groups, -1 where null."""
    return np.asarray(pd.array(table["group"], dtype="Int64").fillna(-1), dtype=np.int64)


class CropDataset(Dataset):
    """The crops of a table as uint8 (3, H, W) tensors at ``size``; item = {"image", "index"}.

    With ``cache`` the JPEGs are decoded once and kept in memory (small releases, CPU demo)."""

    def __init__(self, root: Path, files: list[str], size: tuple[int, int], cache: bool = False) -> None:
        self.root = Path(root)
        self.files = list(files)
        self.size = tuple(size)
        self._cache: torch.Tensor | None = None
        if cache and self.files:
            self._cache = torch.stack([self._load(i) for i in range(len(self.files))])

    def __len__(self) -> int:
        return len(self.files)

    @property
    def cached(self) -> bool:
        return self._cache is not None

    def _load(self, i: int) -> torch.Tensor:
        from PIL import Image

        path = self.root / self.files[i]
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                if (im.height, im.width) != self.size:
                    im = im.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR, reducing_gap=None)
                arr = np.asarray(im, dtype=np.uint8)
        except OSError as exc:
            raise UserError(f"cannot read crop image {path}: {exc}") from None
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()

    def __getitem__(self, i: int) -> dict:
        img = self._cache[i] if self._cache is not None else self._load(i)
        return {"image": img, "index": i}
