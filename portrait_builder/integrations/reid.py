"""Release -> (img_path, pid, camid) lists, and dataset classes for torchreid and fast-reid.

Evaluation protocol: both toolkits score a query against the gallery after discarding gallery images
with the query's pid AND camid (the Market-1501 rule). With ``camera="group"`` (default) the camid of
a crop is its near-duplicate (pHash) group, so that rule drops exactly the same-identity gallery images
of the query's group, which is Portrait250K's protocol (gallery images in the query's group are
ignored; images of other identities in that group, which are rare, are still scored here).
``camera="video"`` gives the video ordinal instead (then every same-identity gallery image would be
dropped, since identities live in one movie: use it only for training-time samplers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from portrait_builder.errors import UserError
from portrait_builder.release import load_release

CAMERA_MODES = ("group", "video")
Item = tuple[str, int, int]


@dataclass(frozen=True)
class ReidSplits:
    train: list[Item]  # pids relabelled 0..num_train_pids-1 (sorted release pid order)
    query: list[Item]  # release pids (1..N), shared scope with the gallery
    gallery: list[Item]  # release pids; 0 for distractors (crops without identity)
    num_train_pids: int
    num_cams: int


def reid_splits(release_dir: str | Path, *, camera: str = "group") -> ReidSplits:
    """Read a release (or an unversioned folder, see ``load_release(require_manifest=False)``) into re-id
    lists. Train crops without identity are left out (a classifier needs a pid); gallery crops without
    identity stay as distractors with pid 0; paths are absolute."""
    if camera not in CAMERA_MODES:
        raise UserError(f"unknown camera mode {camera!r}; valid: {', '.join(CAMERA_MODES)}")
    # Only the annotation contract is needed, so an unversioned folder (no manifest.json) is read too.
    release = load_release(release_dir, require_manifest=False)
    df = release.annotations
    if camera == "video" and "video_id" not in df.columns:
        raise UserError(f"{release.root}: camera='video' needs a video_id column in annotations.parquet")
    root = release.root.resolve()
    if camera == "group":
        # Crops without a group get their own camid, so nothing else is discarded with them.
        keys = [("g", int(g)) if not pd.isna(g) else ("c", int(c)) for g, c in zip(df["group"], df["crop_id"], strict=True)]
    else:
        keys = [("v", int(v)) for v in df["video_id"]]
    camid_of = {k: i for i, k in enumerate(sorted(set(keys)))}
    camids = [camid_of[k] for k in keys]
    train_pids = sorted({int(p) for p in df.loc[(df["subset"] == "train") & df["identity"].notna(), "identity"]})
    relabel = {p: i for i, p in enumerate(train_pids)}
    out: dict[str, list[Item]] = {"train": [], "query": [], "gallery": []}
    for file, subset, identity, camid in zip(df["file"], df["subset"], df["identity"], camids, strict=True):
        path = str(root / file)
        if subset == "train":
            if pd.isna(identity):
                continue
            out["train"].append((path, relabel[int(identity)], camid))
        else:
            out[subset].append((path, 0 if pd.isna(identity) else int(identity), camid))
    return ReidSplits(out["train"], out["query"], out["gallery"], len(train_pids), len(camid_of))


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_") if part) or "PortraitRelease"


def torchreid_dataset_class(release_dir: str | Path, name: str = "portrait", *, camera: str = "group") -> type:
    """A ``torchreid.data.ImageDataset`` subclass reading ``release_dir`` (``root`` is ignored)."""
    try:
        from torchreid.data import ImageDataset
    except ImportError:
        raise UserError("torchreid is not installed (pip install torchreid)") from None
    release_dir = Path(release_dir).resolve()
    reid_splits(release_dir, camera=camera)  # fail now, in one line, on a bad folder

    def __init__(self, root: str = "", **kwargs):
        splits = reid_splits(release_dir, camera=camera)
        self.root = str(release_dir)
        self.dataset_dir = str(release_dir)
        ImageDataset.__init__(self, splits.train, splits.query, splits.gallery, **kwargs)

    return type(_class_name(name), (ImageDataset,), {"__init__": __init__, "dataset_dir": str(release_dir),
                                                       "release_dir": str(release_dir)})  # fmt: skip


def register_torchreid(release_dir: str | Path, name: str = "portrait", *, camera: str = "group") -> type:
    """Register the release under ``name`` (use ``sources=name`` in ``torchreid.data.ImageDataManager``)."""
    cls = torchreid_dataset_class(release_dir, name, camera=camera)
    import torchreid

    try:
        torchreid.data.register_image_dataset(name, cls)
    except ValueError as exc:
        raise UserError(f"torchreid: {exc}") from None
    return cls


def fastreid_dataset_class(release_dir: str | Path, name: str = "PortraitRelease", *, camera: str = "group") -> type:
    """A ``fastreid.data.datasets.bases.ImageDataset`` subclass named ``name`` reading ``release_dir``.

    Like fast-reid's own datasets, train pids and camids are prefixed with the dataset name (strings)
    so several training sets can be combined; query and gallery keep integer ids.
    """
    try:
        from fastreid.data.datasets.bases import ImageDataset
    except ImportError:
        raise UserError("fast-reid is not installed (see github.com/JDAI-CV/fast-reid)") from None
    release_dir = Path(release_dir).resolve()
    reid_splits(release_dir, camera=camera)
    dataset_name = name.lower()

    def __init__(self, root: str = "datasets", **kwargs):
        splits = reid_splits(release_dir, camera=camera)
        self.root = str(release_dir)
        train = [(p, f"{dataset_name}_{pid}", f"{dataset_name}_{cam}") for p, pid, cam in splits.train]
        ImageDataset.__init__(self, train, splits.query, splits.gallery, **kwargs)

    return type(name, (ImageDataset,), {"__init__": __init__, "dataset_dir": str(release_dir),
                                        "dataset_name": dataset_name, "release_dir": str(release_dir)})  # fmt: skip


def register_fastreid(release_dir: str | Path, name: str = "PortraitRelease", *, camera: str = "group") -> type:
    """Register in fast-reid's ``DATASET_REGISTRY`` (use ``DATASETS.NAMES = ("<name>",)`` in its config)."""
    cls = fastreid_dataset_class(release_dir, name, camera=camera)
    from fastreid.data.datasets import DATASET_REGISTRY

    try:
        DATASET_REGISTRY.register(cls)
    except (AssertionError, KeyError, ValueError) as exc:  # fvcore's Registry asserts on a duplicate name
        raise UserError(f"fast-reid: {exc}") from None
    return cls
