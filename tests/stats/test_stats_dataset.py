"""project_frame, dataset_stats, write_stats and `portrait stats` on a real store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from portrait_builder.cli import main
from portrait_builder.dedup import group_project, hash_project
from portrait_builder.split import SplitConfig, split_project
from portrait_builder.stats import dataset_stats, format_table, lts, project_frame
from portrait_builder.store import add_label, current_labels
from portrait_builder.testing.stats_sample import SampleSpec, build_sample_project

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture
def released(project):
    info = build_sample_project(project, SampleSpec(videos=2, identities_per_video=3, tracks_per_identity=2,
                                                    unidentified_tracks_per_video=3, crops_per_track=3, seed=5),
                                source=SHARED if SHARED.is_dir() else None)
    hash_project(project, progress=False)
    group_project(project)
    split_project(project, SplitConfig(seed=0, test_fraction=0.5))
    return project, info


def test_project_frame_matches_the_store(released):
    project, info = released
    df = project_frame(project)
    assert df["crop_id"].tolist() == sorted(info["crop_ids"])
    with project.session() as s:
        labels = current_labels(s)
    tax = project.taxonomy
    for row in df.itertuples(index=False):
        stored = labels.get(row.crop_id, {})
        ident = info["identity_of"][row.crop_id]
        assert (None if pd.isna(row.identity) else int(row.identity)) == ident
        assert row.identity_label == stored.get("identity")
        for attr in tax.attributes:
            if attr.kind == "identity":
                continue
            assert getattr(row, attr.name) == tax.decode(attr.name, stored.get(attr.name)), (row.crop_id, attr.name)
        assert row.subset in ("train", "query", "gallery")
        assert len(row.phash_hex) == 16 and int(row.phash_hex, 16) == int(np.int64(row.phash).view(np.uint64))
        assert Image.open(project.crop_root / row.path).size == (128, 256)
    assert isinstance(df.loc[df["expression"].notna(), "expression"].iloc[0], list)
    assert project_frame(project, split="nope")["subset"].isna().all()


def test_dataset_stats_counts_and_lts(released):
    project, _ = released
    df = project_frame(project)
    stats = dataset_stats(df, project.taxonomy, k=0.2)
    subsets = stats["subsets"]
    assert subsets["all"]["images"] == len(df)
    assert sum(subsets[s]["images"] for s in ("train", "query", "gallery")) == len(df)
    # identity counts: crops with an identity only; recompute independently
    ident = df["identity"].dropna().astype(int).value_counts()
    assert subsets["all"]["identity"]["samples"] == int(ident.sum())
    assert subsets["all"]["identity"]["lts"] == pytest.approx(lts(ident.to_numpy(), 0.2), abs=1e-6)
    assert subsets["all"]["identity"]["lts_interpolated"] is None  # attributes only
    # single-label attribute: 'unsure' and missing excluded; every class listed, empty ones too
    age = subsets["all"]["age"]
    expected = df["age"].dropna()
    expected = expected[expected != "unsure"].value_counts()
    assert age["samples"] == int(expected.sum())
    assert set(age["counts"]) == set(project.taxonomy.attribute("age").classes)
    for cls, n in age["counts"].items():
        assert n == int(expected.get(cls, 0))
    # both LTS columns, recomputed by hand from the counts: the paper's whole classes and the interpolated share
    counts = sorted(age["counts"].values(), reverse=True)
    need = 0.2 * sum(counts)
    m = next(i for i in range(1, len(counts) + 1) if sum(counts[:i]) >= need - 1e-9)
    n_k = (m - 1) + (need - sum(counts[: m - 1])) / counts[m - 1]
    assert age["lts"] == pytest.approx(m / (0.2 * len(counts)), abs=1e-6)
    assert age["lts_interpolated"] == pytest.approx(n_k / (0.2 * len(counts)), abs=1e-6)
    # multi-label: each listed value counts once
    expr = subsets["train"]["expression"]
    flat = [v for lst in df.loc[df["subset"] == "train", "expression"].dropna() for v in lst if v != "unsure"]
    assert expr["samples"] == len(flat)
    table = format_table(stats)
    assert "LTS_0.2" in table and "LTS_0.2 interp." in table and "expression" in table and "gallery" in table
    age_row = next(line.split() for line in table.splitlines() if line.startswith("age ") and " all " in line)
    assert age_row[4:6] == [f"{age['lts']:.3f}", f"{age['lts_interpolated']:.3f}"]
    ident_row = next(line.split() for line in table.splitlines() if line.startswith("identity ") and " all " in line)
    assert ident_row[5] == "-"


def test_unsure_values_are_not_counted(project):
    build_sample_project(project, SampleSpec(videos=1, identities_per_video=1, tracks_per_identity=1,
                                             unidentified_tracks_per_video=1, crops_per_track=2), source=None)
    df = project_frame(project, split=None)
    with project.write() as s:
        for cid in df["crop_id"]:
            add_label(s, project.taxonomy, int(cid), "height", "unsure")
            add_label(s, project.taxonomy, int(cid), "expression", ["unsure"])
    stats = dataset_stats(project_frame(project, split=None), project.taxonomy)
    assert stats["subsets"]["all"]["height"]["samples"] == 0
    assert stats["subsets"]["all"]["expression"]["samples"] == 0
    assert stats["subsets"]["train"]["images"] == 0  # no split: only "all" is filled


def test_write_stats_and_cli(released, tmp_path, capsys):
    project, _ = released
    assert main(["stats", str(project.root), "--k", "0.3", "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "LTS_0.3" in out and "body_posture" in out
    pngs = sorted((tmp_path / "cli").glob("*.png"))
    assert len(pngs) == len(project.taxonomy.attributes)  # identity + every attribute
    for p in pngs:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 400
    data = json.loads((tmp_path / "cli" / "stats.json").read_text())
    assert set(data["subsets"]) == {"train", "query", "gallery", "all"} and data["k"] == 0.3
    gender = data["subsets"]["all"]["gender"]
    assert gender["lts"] == pytest.approx(lts(list(gender["counts"].values()), 0.3), abs=1e-6)
    assert gender["lts_interpolated"] == pytest.approx(
        lts(list(gender["counts"].values()), 0.3, variant="interpolated"), abs=1e-6)
    assert "LTS_0.3 interp." in out
    assert "| task |" in (tmp_path / "cli" / "stats.md").read_text()
    assert main(["stats", str(project.root), "--k", "2"]) == 2
    assert "--k must be between 0 and 1" in capsys.readouterr().err
