"""`portrait hash` / `portrait groups` against a real store (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from portrait_builder.cli import main
from portrait_builder.dedup import GROUPS_SETTING, group_project, hash_project, to_unsigned
from portrait_builder.dedup import store as dedup_store
from portrait_builder.store import Crop, Setting
from portrait_builder.testing.stats_sample import SampleSpec, build_sample_project


def _stored(project):
    with project.session() as s:
        return s.execute(select(Crop.id, Crop.path, Crop.phash, Crop.phash_group, Crop.video_id).order_by(Crop.id)).all()


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture
def sample(project):
    build_sample_project(project, SampleSpec(videos=2, identities_per_video=2, tracks_per_identity=2,
                                             unidentified_tracks_per_video=2, crops_per_track=3),
                         source=SHARED if SHARED.is_dir() else None)
    return project


def test_hash_is_imagehash_resumable_and_groups_are_stored(sample, monkeypatch):
    project = sample
    real = dedup_store.phash_files_checked
    calls = {"n": 0}

    def crash_on_second_batch(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(dedup_store, "phash_files_checked", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        hash_project(project, progress=False, batch=5)
    rows = _stored(project)
    assert sum(r.phash is not None for r in rows) == 5  # the first batch was committed, nothing else
    monkeypatch.setattr(dedup_store, "phash_files_checked", real)
    report = hash_project(project, progress=False, batch=5)
    assert (report.hashed, report.already, report.missing_files) == (len(rows) - 5, 5, 0)
    rows = _stored(project)
    for r in rows:
        ref = imagehash.phash(Image.open(project.crop_root / r.path))
        assert f"{int(to_unsigned([r.phash])[0]):016x}" == str(ref)
    assert hash_project(project, progress=False).hashed == 0  # nothing left to do

    rep = group_project(project, threshold=8)
    rows = _stored(project)
    hashes = to_unsigned([r.phash for r in rows])
    # brute force reference over the stored hashes; group id = smallest crop id of the group
    by_group: dict[int, list[int]] = {}
    for r in rows:
        by_group.setdefault(r.phash_group, []).append(r.id)
    assert rep.n_groups == len(by_group)
    for gid, members in by_group.items():
        assert gid == min(members)
    ids = [r.id for r in rows]
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            if bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= 8:
                assert rows[i].phash_group == rows[j].phash_group, (ids[i], ids[j])
    # sample tracks are near-duplicates: their crops share a group
    assert rep.n_multi >= 1 and rep.largest >= 3
    with project.session() as s:
        setting = s.get(Setting, GROUPS_SETTING).value
    assert setting == {"threshold": 8, "within_video": False, "n_groups": rep.n_groups}

    within = group_project(project, threshold=64, within_video=True)
    assert within.n_groups == 2  # one group per video at T=64
    rows = _stored(project)
    for r in rows:
        assert r.phash_group == min(x.id for x in rows if x.video_id == r.video_id)


def test_cli_hash_and_groups(sample, capsys):
    root = str(sample.root)
    assert main(["hash", root, "--no-progress"]) == 0
    assert "hashed" in capsys.readouterr().out
    assert main(["groups", root, "--threshold", "6", "--within-video"]) == 0
    out = capsys.readouterr().out
    assert "threshold 6 within each video" in out
    assert main(["groups", root, "--threshold", "99"]) == 2
    assert "between 0 and 64" in capsys.readouterr().err


def test_groups_before_hash_is_a_clear_error(sample, capsys):
    assert main(["groups", str(sample.root)]) == 2
    assert "run `portrait hash" in capsys.readouterr().err


def test_missing_crop_file_is_reported_and_left_empty(sample):
    rows = _stored(sample)
    (sample.crop_root / rows[0].path).unlink()
    report = hash_project(sample, progress=False)
    assert report.missing_files == 1
    assert _stored(sample)[0].phash is None
    assert np.all([r.phash is not None for r in _stored(sample)[1:]])


def test_a_big_job_in_small_batches_still_uses_the_worker_pool(sample, monkeypatch):
    """The pool decision is made on the whole job, not per --batch (else --batch 512 runs on one core)."""
    seen = []
    real = dedup_store.phash_files_checked

    def spy(*a, **kw):
        seen.append(kw.get("pool"))
        return real(*a, **kw)

    monkeypatch.setattr(dedup_store, "phash_files_checked", spy)
    monkeypatch.setattr(dedup_store, "MIN_FILES_FOR_POOL", 10)
    report = hash_project(sample, progress=False, batch=7)
    assert report.hashed == len(_stored(sample)) > 10
    assert seen and all(seen)  # every small batch went to the pool
    rows = _stored(sample)
    stored = [f"{int(h):016x}" for h in to_unsigned([r.phash for r in rows])]
    assert stored == [str(imagehash.phash(Image.open(sample.crop_root / r.path))) for r in rows]  # the reference
