"""torchreid and fast-reid loaders, against minimal stand-ins of their registration APIs (neither package is
installed here). The stand-ins keep what those libraries check: 3-tuples, 0-based contiguous train pids,
name registries that refuse duplicates, classes instantiated by name with keyword arguments."""

import sys
import types
from pathlib import Path

import pytest

from portrait_builder.errors import UserError
from portrait_builder.integrations import register_fastreid, register_torchreid, reid_splits
from portrait_builder.release import ReleaseConfig, load_release, write_release


class _ImageDataset:
    """What torchreid's and fast-reid's ImageDataset do with the lists (minus image loading)."""

    def __init__(self, train, query, gallery, transform=None, mode="train", combineall=False, verbose=True, **kwargs):
        for items in (train, query, gallery):
            for item in items:
                assert len(item) == 3 and isinstance(item[0], str)
        self.train, self.query, self.gallery = train, query, gallery
        self.num_train_pids = len({p for _, p, _ in train})
        self.num_train_cams = len({c for _, _, c in train})
        self.kwargs = kwargs


@pytest.fixture
def torchreid_standin(monkeypatch):
    registry = {}
    data = types.ModuleType("torchreid.data")

    def register_image_dataset(name, dataset):
        if name in registry:
            raise ValueError(f"The given name already exists, please choose another name excluding {list(registry)}")
        registry[name] = dataset

    data.ImageDataset = _ImageDataset
    data.register_image_dataset = register_image_dataset
    data.init_image_dataset = lambda name, **kw: registry[name](**kw)  # what ImageDataManager calls
    pkg = types.ModuleType("torchreid")
    pkg.data = data
    monkeypatch.setitem(sys.modules, "torchreid", pkg)
    monkeypatch.setitem(sys.modules, "torchreid.data", data)
    return data


@pytest.fixture
def fastreid_standin(monkeypatch):
    class Registry(dict):  # fvcore.common.registry.Registry's contract
        def register(self, obj=None):
            if obj is None:
                return self.register
            assert obj.__name__ not in self, f"An object named '{obj.__name__}' was already registered in 'dataset'!"
            self[obj.__name__] = obj
            return obj

    mods = {name: types.ModuleType(name) for name in
            ("fastreid", "fastreid.data", "fastreid.data.datasets", "fastreid.data.datasets.bases")}  # fmt: skip
    mods["fastreid.data.datasets"].DATASET_REGISTRY = Registry()
    mods["fastreid.data.datasets.bases"].ImageDataset = _ImageDataset
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return mods["fastreid.data.datasets"].DATASET_REGISTRY


@pytest.fixture
def release(tmp_path):
    """SQLite only: the loaders read a release folder, the store backend does not matter here."""
    from release_project import build_project

    from portrait_builder.store import Project

    project = Project.init(tmp_path / "proj")
    build_project(project)
    out = write_release(project, "1.0.0", tmp_path / "rel", ReleaseConfig(progress=False))
    project.close()
    return out


def test_reid_splits(release):
    ann = load_release(release).annotations
    splits = reid_splits(release)
    train_ids = ann[(ann["subset"] == "train") & ann["identity"].notna()]
    assert len(splits.train) == len(train_ids)  # unidentified train crops (-1) are left out
    assert sorted({p for _, p, _ in splits.train}) == list(range(splits.num_train_pids))  # relabelled 0..n-1
    assert len(splits.query) == int((ann["subset"] == "query").sum())
    assert len(splits.gallery) == int((ann["subset"] == "gallery").sum())
    assert sum(p == 0 for _, p, _ in splits.gallery) == int(ann.loc[ann["subset"] == "gallery", "identity"].isna().sum())
    # Market rule (drop gallery items with the query's pid and camid) == Portrait rule (drop the query's group)
    group_of = dict(zip((str(release.resolve() / f) for f in ann["file"]), ann["group"], strict=True))
    for q_path, q_pid, q_cam in splits.query:
        kept = [g for g in splits.gallery if not (g[1] == q_pid and g[2] == q_cam)]
        want = [g for g in splits.gallery if not (g[1] == q_pid and group_of[g[0]] == group_of[q_path])]
        assert kept == want
        assert any(g[1] == q_pid for g in kept)  # the split leaves a match to find
    video = reid_splits(release, camera="video")
    assert video.num_cams == 2
    with pytest.raises(UserError, match="valid: group, video"):
        reid_splits(release, camera="shot")


def test_torchreid_registration(release, torchreid_standin):
    cls = register_torchreid(release, "portrait")
    ds = torchreid_standin.init_image_dataset("portrait", root="reid-data", transform=None, mode="train",
                                              combineall=False, verbose=False, split_id=0)  # fmt: skip
    assert isinstance(ds, cls) and ds.num_train_pids == reid_splits(release).num_train_pids
    assert ds.query == reid_splits(release).query
    with pytest.raises(UserError, match="already exists"):
        register_torchreid(release, "portrait")


def test_fastreid_registration(release, fastreid_standin):
    cls = register_fastreid(release, "PortraitV1")
    assert fastreid_standin["PortraitV1"] is cls
    ds = fastreid_standin["PortraitV1"](root="datasets", combineall=False)
    pid, cam = ds.train[0][1], ds.train[0][2]
    assert pid.startswith("portraitv1_") and cam.startswith("portraitv1_")  # fast-reid's own convention
    assert ds.num_train_pids == reid_splits(release).num_train_pids
    with pytest.raises(UserError, match="already registered"):
        register_fastreid(release, "PortraitV1")


def test_missing_packages_say_so(release, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchreid", None)
    monkeypatch.setitem(sys.modules, "fastreid", None)
    with pytest.raises(UserError, match="torchreid is not installed"):
        register_torchreid(release)
    with pytest.raises(UserError, match="fast-reid is not installed"):
        register_fastreid(release)


def test_reid_splits_read_an_unversioned_folder(release, tmp_path):
    """The loaders need only the annotation contract, so a folder without manifest.json reads the same
    (paths differ only by the root); camera='video' needs the video_id column."""
    import shutil

    import pyarrow.parquet as pq

    bare = shutil.copytree(release, tmp_path / "bare")
    (bare / "manifest.json").unlink()
    with pytest.raises(UserError, match="no manifest.json"):
        load_release(bare)

    def rel(items, root):
        return [(str(Path(p).relative_to(root.resolve())), pid, cam) for p, pid, cam in items]

    a, b = reid_splits(release), reid_splits(bare)
    for name in ("train", "query", "gallery"):
        assert rel(getattr(a, name), release) == rel(getattr(b, name), bare)
    pq.write_table(pq.read_table(bare / "annotations.parquet").drop_columns(["video_id"]), bare / "annotations.parquet")
    with pytest.raises(UserError, match="needs a video_id column"):
        reid_splits(bare, camera="video")
