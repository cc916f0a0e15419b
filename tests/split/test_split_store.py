"""`portrait split` on a real store: reads current identity labels, replaces the named split atomically."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from portrait_builder.cli import main
from portrait_builder.dedup import group_project, hash_project
from portrait_builder.split import SplitConfig, read_split, split_project, split_setting_key
from portrait_builder.store import Setting, SplitAssignment, add_label
from portrait_builder.testing.stats_sample import SampleSpec, build_sample_project

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture
def grouped(project):
    info = build_sample_project(project, SampleSpec(videos=2, identities_per_video=3, tracks_per_identity=2,
                                                    unidentified_tracks_per_video=3, crops_per_track=3),
                                source=SHARED if SHARED.is_dir() else None)
    hash_project(project, progress=False)
    group_project(project, threshold=8)
    return project, info


def test_split_project_writes_assignments_and_summary(grouped):
    project, info = grouped
    result = split_project(project, SplitConfig(seed=4, test_fraction=0.5))
    summary = result["summary"]
    n = len(info["crop_ids"])
    assert summary["total"]["images"] == n
    assert sum(summary[s]["images"] for s in ("train", "query", "gallery")) == n
    n_ids = len({v for v in info["identity_of"].values() if v is not None})
    assert summary["total"]["ids"] == n_ids
    assert summary["train"]["ids"] + summary["gallery"]["ids"] == n_ids  # disjoint identities
    assert summary["query"]["ids"] <= summary["gallery"]["ids"]
    stored = read_split(project, "default")
    assert len(stored) == n
    # stored identities come from the labels: crops labelled unknown/unsure never are queries
    for cid, subset in stored.items():
        if info["identity_of"][cid] is None:
            assert subset in ("train", "gallery")
    with project.session() as s:
        assert s.get(Setting, split_setting_key("default")).value["config"]["seed"] == 4


def test_resplit_replaces_only_the_named_split_and_follows_relabels(grouped):
    project, info = grouped
    split_project(project, SplitConfig(seed=1), name="a")
    split_project(project, SplitConfig(seed=2), name="b")
    first_b = read_split(project, "b")
    # relabel one identified crop as unknown: it must never be a query afterwards
    cid = next(c for c, v in info["identity_of"].items() if v is not None)
    with project.write() as s:
        add_label(s, project.taxonomy, cid, "identity", "unknown")
    split_project(project, SplitConfig(seed=1), name="a")
    with project.session() as s:
        counts = dict(s.execute(select(SplitAssignment.split, func.count()).group_by(SplitAssignment.split)).all())
    assert counts == {"a": len(info["crop_ids"]), "b": len(info["crop_ids"])}
    assert read_split(project, "b").equals(first_b)
    assert read_split(project, "a")[cid] != "query"


def test_cli_split_prints_table2(grouped, capsys):
    project, _ = grouped
    assert main(["split", str(project.root), "--seed", "7", "--by", "movie", "--name", "movies"]) == 0
    out = capsys.readouterr().out
    for word in ("train", "query", "gallery", "total", "IDs"):
        assert word in out
    assert main(["split", str(project.root), "--seed", "7", "--test-fraction", "1.5"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # --seed is required: argparse exits 2
        main(["split", str(project.root)])
    assert exc.value.code == 2


def test_bad_split_name_is_refused_before_anything_is_written(grouped):
    from portrait_builder.errors import UserError

    project, _ = grouped
    with pytest.raises(UserError, match="invalid split name"):
        split_project(project, SplitConfig(seed=0), name="a b%")
    assert len(read_split(project, "a b%")) == 0
