"""Writing a release from a real project (JPEG crops on disk, SQLite and PostgreSQL stores)."""

import json
import os
from pathlib import Path

import jsonschema
import pandas as pd
import pyarrow.parquet as pq
import pytest
from release_project import TRACKS, build_project
from sqlalchemy import select

from portrait_builder.cli import main
from portrait_builder.errors import UserError
from portrait_builder.release import ReleaseConfig, load_release, release_counts, verify_release, write_release
from portrait_builder.release.naming import parse_name
from portrait_builder.resources import schemas_dir
from portrait_builder.store import Release, SplitAssignment

QUIET = ReleaseConfig(progress=False)


def test_round_trip(project, built, tmp_path):
    out = write_release(project, "1.0.0", tmp_path / "rel", QUIET)
    rel = load_release(out)
    ann = rel.annotations
    n = sum(t[3] for t in TRACKS) - len(built.unassigned)
    assert len(ann) == n
    # every crop's bytes arrive unchanged (hard link or copy) under its Market-1501 name
    src = {c: project.crop_root / p for c, p in zip(*_paths(project), strict=True)}
    for row in ann.itertuples():
        assert (out / row.file).read_bytes() == src[row.crop_id].read_bytes()
        assert row.subset == built.subset[row.crop_id]
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "DATASHEET.md", "annotations.parquet", "bounding_box_test", "bounding_box_train", "captions.jsonl",
        "manifest.json", "qa.jsonl", "query", "stats", "stats.json", "taxonomy.yaml"])  # fmt: skip
    # the exact Arrow types of the contract
    schema = pq.read_schema(out / "annotations.parquet")
    types = {f.name: str(f.type) for f in schema}
    assert types["crop_id"] == "int64" and types["identity"] == "int64" and types["x1"] == "float"
    assert types["expression"] == "list<element: string>" and types["phash"] == "string"
    assert ann["identity"].dtype == "Int64" and ann["group"].dtype == "Int64"
    assert (out / "taxonomy.yaml").read_bytes() == Path(project.taxonomy.source).read_bytes()
    # manifest: valid against its schema; checksums of every file but itself; counts add up
    manifest = json.loads((out / "manifest.json").read_text())
    jsonschema.validate(manifest, json.loads((schemas_dir() / "release_manifest.schema.json").read_text()))
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == files
    assert manifest["counts"]["crops"] == n and manifest["counts"]["excluded_unassigned"] == len(built.unassigned)
    assert manifest["counts"]["subsets"]["query"] == {"images": 3, "identities": 3, "unidentified": 0}
    assert {i["store_identity"] for i in manifest["identities"]} == set(built.identities.values())
    # captions and QA: one caption per crop, QA only for known (not unsure) labels
    captions = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert [c["crop_id"] for c in captions] == ann["crop_id"].tolist()
    assert all(c["caption"].endswith(".") and c["caption"][0].isupper() for c in captions)
    qa = [json.loads(line) for line in (out / "qa.jsonl").read_text().splitlines()]
    assert qa and all(q["answer"] and "unsure" not in q["answer"].lower() for q in qa)
    labelled_gender = int(ann["gender"].notna().sum())
    assert sum(q["attribute"] == "gender" for q in qa) == labelled_gender
    sheet = (out / "DATASHEET.md").read_text()
    for heading in ("## Motivation", "## Composition", "## Collection process",
                    "## Preprocessing / cleaning / labeling", "## Uses", "## Distribution", "## Maintenance"):
        assert heading in sheet
    assert f"{n} crops" in sheet
    assert verify_release(out) == []
    # recorded in the store
    with project.session() as s:
        row = s.scalars(select(Release)).one()
    assert row.version == "1.0.0" and row.path == str(out.resolve())
    import hashlib

    assert row.manifest_sha256 == hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()


def _paths(project):
    from portrait_builder.store import Crop

    with project.session() as s:
        rows = s.execute(select(Crop.id, Crop.path)).all()
    return [r[0] for r in rows], [r[1] for r in rows]


def test_hardlinks_when_possible(project, built, tmp_path):
    out = write_release(project, "1.0.0", tmp_path / "rel", QUIET)
    first = load_release(out).annotations.iloc[0]
    assert os.stat(out / first["file"]).st_nlink >= 2  # same file system: linked, not copied
    out2 = write_release(project, "1.0.0", tmp_path / "copied", ReleaseConfig(progress=False, link="copy"))
    assert os.stat(out2 / first["file"]).st_nlink == 1


def test_same_store_same_manifest_bytes(project, built, tmp_path):
    a = write_release(project, "1.0.0", tmp_path / "a", QUIET)
    (tmp_path / "elsewhere").mkdir()
    b = write_release(project, "1.0.0", tmp_path / "elsewhere" / "b", ReleaseConfig(progress=False, link="copy"))
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()
    with project.session() as s:
        assert len(s.scalars(select(Release)).all()) == 1  # the same release, materialised twice


def test_refuses_to_overwrite_and_version_reuse(project, built, tmp_path):
    out = write_release(project, "1.0.0", tmp_path / "rel", QUIET)
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(UserError, match="already exists"):
        write_release(project, "1.0.1", out, QUIET)
    assert (out / "manifest.json").read_bytes() == before
    with pytest.raises(UserError, match="already released .* different content"):
        write_release(project, "1.0.0", tmp_path / "other", ReleaseConfig(progress=False, k=0.5))
    assert not (tmp_path / "other").exists()
    assert not list(tmp_path.glob(".other.partial-*"))  # the temporary folder is cleaned up
    with pytest.raises(UserError, match="semantic"):
        write_release(project, "v1", tmp_path / "x", QUIET)


def test_missing_steps_are_named(project, tmp_path):
    with pytest.raises(UserError, match="no crops"):
        write_release(project, "1.0.0", tmp_path / "r", QUIET)
    build_project(project, split="other")
    with pytest.raises(UserError, match="portrait split"):
        write_release(project, "1.0.0", tmp_path / "r", QUIET)
    from portrait_builder.store import Crop

    with project.write() as s:
        s.execute(SplitAssignment.__table__.update().values(split="default"))
        s.execute(Crop.__table__.update().where(Crop.id == 3).values(phash_group=None))
    with pytest.raises(UserError, match="portrait groups"):
        write_release(project, "1.0.0", tmp_path / "r", QUIET)
    with project.write() as s:
        s.execute(Crop.__table__.update().values(phash=None))
    with pytest.raises(UserError, match="portrait hash"):
        write_release(project, "1.0.0", tmp_path / "r", QUIET)
    assert not (tmp_path / "r").exists()


def test_cli_release_verify(project, built, tmp_path, capsys):
    out = tmp_path / "rel"
    assert main(["release", str(project.root), "--version", "2.0.0", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    counts = load_release(out).manifest["counts"]  # the CLI prints the store's record of them: the same
    assert f"released 2.0.0 to {out}: {counts['crops']} crops (train {counts['subsets']['train']['images']} images" in printed
    with pytest.raises(UserError, match="never released"):
        release_counts(project, "9.9.9")
    assert main(["release", "verify", str(out), "--no-progress"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["release", str(project.root), "--version", "2.0.1", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    name = load_release(out).annotations["file"].iloc[0]
    assert parse_name(name.split("/")[1])
    pd.testing.assert_frame_equal(load_release(out).annotations, load_release(out).annotations)
