"""The baseline trains and evaluates from a release written by write_release, read through load_release
(the one reader), on the release tests' real project (2 videos, 33 released crops, labels via add_label)."""

from __future__ import annotations

import json

import pytest
import torch
from release_project import written_release

from portrait_builder.errors import UserError
from portrait_builder.release import load_release
from portrait_builder.release.manifest import dumps
from portrait_builder.train import evaluate, load_config, train

pytestmark = pytest.mark.slow  # one tiny CPU epoch plus an evaluation: ~10-30 s on 2 shared cores


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return written_release(tmp_path_factory.mktemp("baseline"))


@pytest.fixture(scope="module")
def trained(release, tmp_path_factory):
    return train(release, load_config("tiny", epochs=1), tmp_path_factory.mktemp("run"), progress=False)


def test_baseline_trains_and_evaluates_from_a_written_release(release, trained):
    rel = load_release(release)
    result = trained
    ckpt = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and len(result.history) == 1
    # the checkpoint says which data it saw
    import hashlib

    assert ckpt["release_version"] == "1.0.0"
    assert ckpt["release_manifest_sha256"] == hashlib.sha256((release / "manifest.json").read_bytes()).hexdigest()
    # The identity task's classes are the release's train pids; every taxonomy attribute is a task.
    train_pids = sorted(int(p) for p in rel.subset("train")["identity"].dropna())
    tasks = {t["name"]: t for t in ckpt["tasks"]}
    assert tasks["identity"]["classes"] == [str(p) for p in sorted(set(train_pids))]
    assert set(tasks) == {a.name for a in rel.taxonomy.attributes}
    assert tasks["age"]["classes"] == list(rel.taxonomy.attribute("age").classes)

    row = evaluate(release, result.checkpoint, progress=False)
    counts = rel.manifest["counts"]["subsets"]
    assert row["num_query"] == counts["query"]["images"] and row["num_gallery"] == counts["gallery"]["images"]
    assert 0.0 <= row["macro_mAP"] <= 1.0 and 0.0 <= row["macro_rank1"] <= 1.0  # every query has a match
    assert row["ReID"] == pytest.approx((row["macro_rank1"] + row["macro_mAP"]) / 2)


def test_baseline_refuses_a_release_load_release_refuses(release, trained, tmp_path):
    """train/evaluate read through load_release: its checks (here the manifest's schema version) apply."""
    import shutil

    bad = shutil.copytree(release, tmp_path / "bad")
    manifest = json.loads((bad / "manifest.json").read_text())
    (bad / "manifest.json").write_bytes(dumps({**manifest, "schema_version": 2}))
    with pytest.raises(UserError, match="schema_version 2"):
        train(bad, load_config("tiny", epochs=1), tmp_path / "run", progress=False)
    with pytest.raises(UserError, match="schema_version 2"):
        evaluate(bad, trained.checkpoint, progress=False)
