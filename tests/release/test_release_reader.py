"""load_release is the one reader of releases: what it returns, its cheap checks, its one-line errors,
and the decision for folders without a manifest (refused by default, read as unversioned on request)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest
from release_project import written_release

from portrait_builder.errors import UserError
from portrait_builder.release import load_release
from portrait_builder.release.manifest import dumps


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """SQLite only: reading a release does not depend on the store backend."""
    return written_release(tmp_path_factory.mktemp("reader"))


@pytest.fixture
def copy(release, tmp_path):
    """A private copy to damage."""
    return shutil.copytree(release, tmp_path / "copy")


def _one_line_error(fn, match: str) -> str:
    with pytest.raises(UserError, match=match) as info:
        fn()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_load_release_gives_the_baseline_what_it_needs(release):
    rel = load_release(release)
    manifest = json.loads((release / "manifest.json").read_text())
    assert rel.version == "1.0.0" and rel.manifest == manifest
    ann = rel.annotations
    raw = pq.read_table(release / "annotations.parquet").to_pandas()
    assert list(ann.columns) == list(raw.columns) and len(ann) == manifest["counts"]["crops"]
    assert str(ann["identity"].dtype) == "Int64" and str(ann["group"].dtype) == "Int64"
    assert ann["identity"].astype("float").equals(raw["identity"].astype("float"))
    assert all(v is None or isinstance(v, list) for v in ann["expression"])
    for s in ("train", "query", "gallery"):
        sub = rel.subset(s)
        assert list(sub.index) == list(range(len(sub)))
        assert len(sub) == manifest["counts"]["subsets"][s]["images"]
        assert set(sub["subset"]) == {s}
    both = rel.subset("query", "gallery")
    assert len(both) == len(rel.subset("query")) + len(rel.subset("gallery"))
    assert all(rel.path(f).is_file() for f in ann["file"])
    assert [a.name for a in rel.taxonomy.attributes][:2] == ["identity", "gender"]
    with pytest.raises(ValueError, match="valid: train, query, gallery"):
        rel.subset("test")


def test_load_release_does_not_hash_images_unless_asked(copy):
    """Cheap by default: a damaged crop is found only by verify=True (sha256 of every file)."""
    victim = load_release(copy).annotations["file"].iloc[0]
    (copy / victim).write_bytes(b"not the original bytes")
    assert len(load_release(copy).annotations) > 0
    msg = _one_line_error(lambda: load_release(copy, verify=True), "fails verification: checksum mismatch")
    assert victim in msg


def test_bad_input_is_one_line(copy, tmp_path):
    _one_line_error(lambda: load_release(tmp_path / "nowhere"), "release folder not found")
    _one_line_error(lambda: load_release(tmp_path / "nowhere", require_manifest=False), "release folder not found")

    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_bytes(dumps({**manifest, "schema_version": 99}))
    _one_line_error(lambda: load_release(copy), "schema_version 99; this portrait-builder reads 1")
    (copy / "manifest.json").write_text("{not json", encoding="utf-8")
    _one_line_error(lambda: load_release(copy), "not valid JSON")
    (copy / "manifest.json").write_bytes(dumps(manifest))

    table = pq.read_table(copy / "annotations.parquet")
    pq.write_table(table.drop_columns(["expression"]), copy / "annotations.parquet")
    _one_line_error(lambda: load_release(copy), "lacks attribute column")
    pq.write_table(table.drop_columns(["subset"]), copy / "annotations.parquet")
    _one_line_error(lambda: load_release(copy), r"lacks column\(s\) subset")
    df = table.to_pandas()
    df.loc[0, "subset"] = "test"
    df.to_parquet(copy / "annotations.parquet", index=False)
    _one_line_error(lambda: load_release(copy), r"unknown subset value\(s\) \['test'\]")
    (copy / "annotations.parquet").write_bytes(b"PAR1 truncated")
    _one_line_error(lambda: load_release(copy), "annotations.parquet cannot be read")
    (copy / "annotations.parquet").unlink()
    _one_line_error(lambda: load_release(copy), "no annotations.parquet")
    (copy / "taxonomy.yaml").unlink()
    _one_line_error(lambda: load_release(copy), "lacks taxonomy.yaml")


def test_folder_without_manifest_is_refused_unless_unversioned_is_asked(release, copy, tmp_path):
    (copy / "manifest.json").unlink()
    _one_line_error(lambda: load_release(copy), "is not a release \\(no manifest.json\\)")
    _one_line_error(lambda: load_release(copy, require_manifest=False, verify=True), "cannot verify")
    rel = load_release(copy, require_manifest=False)
    assert rel.manifest == {} and rel.version is None
    pd.testing.assert_frame_equal(rel.annotations, load_release(release).annotations)

    # A hand-made folder: annotations only, no taxonomy.yaml (default taxonomy), a missing attribute
    # column (unlabelled) and none of the optional contract columns.
    hand = tmp_path / "hand"
    hand.mkdir()
    full = rel.annotations
    full[["crop_id", "file", "subset", "identity", "group", "gender"]].to_parquet(hand / "annotations.parquet")
    loose = load_release(hand, require_manifest=False)
    assert loose.taxonomy.attributes == rel.taxonomy.attributes  # the release's taxonomy is the default one
    assert loose.annotations["age"].isna().all() and loose.annotations["expression"].isna().all()
    assert loose.annotations["gender"].tolist() == full["gender"].tolist()
    assert len(loose.subset("train")) == len(rel.subset("train"))
