"""Releases carry each label's provenance in annotations.parquet (``<attribute>_provenance``); releases
written before that (no such columns) still load, verify and diff.

Reference: the provenance of the newest label of each (crop, attribute) read back through
``store.label_history`` (the ORM path, not the writer's join), None in the store counting as a click."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from release_project import written_release
from sqlalchemy import update

from portrait_builder.common import file_digest
from portrait_builder.release import ReleaseConfig, diff_releases, load_release, verify_release, write_release
from portrait_builder.release.manifest import dumps
from portrait_builder.release.records import arrow_schema, provenance_columns
from portrait_builder.store import Annotator, Label, add_label, label_history

QUIET = ReleaseConfig(progress=False, link="copy")


def _expected(project, crop_ids):
    """{(crop_id, attribute): provenance of its current label, or None when unlabelled / cleared}."""
    out = {}
    with project.session() as s:
        for crop_id in crop_ids:
            for attr in project.taxonomy.names:
                history = label_history(s, crop_id, attr)
                newest = history[-1] if history else None
                out[(crop_id, attr)] = newest.provenance if newest is not None and newest.value is not None else None
    return out


def test_release_carries_each_labels_provenance(project, built, tmp_path):
    tax = project.taxonomy
    c = built.crops
    with project.write() as s:
        ann = s.query(Annotator).one().id
        add_label(s, tax, c[1], "body_posture", "standing", annotator_id=ann, provenance="accepted")
        add_label(s, tax, c[2], "arm_posture", "arms_down", annotator_id=ann, provenance="propagated")
        add_label(s, tax, c[3], "age", "elderly", annotator_id=ann, provenance="inherited")
        add_label(s, tax, c[6], "expression", ["happiness"], annotator_id=ann, source="import")
        add_label(s, tax, c[7], "identity", built.identities["B"], annotator_id=ann, provenance="merged")
        add_label(s, tax, c[8], "height", "tall", annotator_id=ann, provenance="accepted")
        add_label(s, tax, c[8], "height", None, annotator_id=ann, source="undo")  # cleared: unlabelled again
        # a label from before revision 0004 has no provenance in the store: a click
        s.execute(update(Label).where(Label.crop_id == c[0], Label.attribute == "age").values(provenance=None))
    out = write_release(project, "1.0.0", tmp_path / "rel", QUIET)
    assert verify_release(out) == []

    raw = pq.read_table(out / "annotations.parquet")
    assert raw.schema.equals(arrow_schema(tax), check_metadata=False)
    rel = load_release(out)
    assert rel.has_provenance
    ann = rel.annotations.set_index("crop_id")
    expected = _expected(project, list(ann.index))
    # pandas reads a null string cell as NaN (str dtype): compare missing as None
    got = {(crop_id, attr): None if pd.isna(v := ann.at[crop_id, f"{attr}_provenance"]) else v
           for crop_id, attr in expected}
    assert got == expected
    assert expected[(c[0], "age")] == "clicked" and ann.at[c[1], "body_posture_provenance"] == "accepted"
    assert ann.at[c[2], "arm_posture_provenance"] == "propagated" and ann.at[c[3], "age_provenance"] == "inherited"
    assert ann.at[c[6], "expression_provenance"] == "imported" and ann.at[c[7], "identity_provenance"] == "merged"
    assert pd.isna(ann.at[c[8], "height_provenance"]) and pd.isna(ann.at[c[8], "height"])
    # a provenance exactly where a label is (every attribute but identity, whose 'unknown' is no release id)
    for attr in rel.taxonomy.attributes:
        if attr.kind != "identity":
            assert (ann[attr.name].notna() == ann[f"{attr.name}_provenance"].notna()).all(), attr.name

    # the same value given again by accepting a prediction changes the release, and diff says so
    with project.write() as s:
        add_label(s, tax, c[3], "age", "elderly", annotator_id=s.query(Annotator).one().id, provenance="accepted")
    out2 = write_release(project, "1.1.0", tmp_path / "rel2", QUIET)
    d = diff_releases(out, out2)
    assert d["changed"] == [] and d["provenance_compared"] is True
    assert d["provenance"] == [{"crop_id": c[3], "attribute": "age", "old": "inherited", "new": "accepted"}]
    assert d["same_store_fingerprint"] is False


def _drop_provenance(out, taxonomy):
    """Rewrite a release as one written before provenance: the same table without the *_provenance columns,
    manifest re-sealed."""
    table = pq.read_table(out / "annotations.parquet")
    legacy = table.drop_columns(provenance_columns(taxonomy))
    assert legacy.schema.equals(arrow_schema(taxonomy, provenance=False), check_metadata=False)
    pq.write_table(legacy, out / "annotations.parquet", compression="zstd")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["annotations.parquet"] = file_digest(out / "annotations.parquet")
    (out / "manifest.json").write_bytes(dumps(manifest))


def test_a_release_without_provenance_still_loads_verifies_and_diffs(tmp_path):
    new = written_release(tmp_path / "new")
    old = written_release(tmp_path / "old")
    tax = load_release(new).taxonomy
    _drop_provenance(old, tax)
    assert verify_release(old) == []
    rel = load_release(old, verify=True)
    assert not rel.has_provenance
    cols = provenance_columns(tax)
    assert all(c in rel.annotations.columns for c in cols)
    assert rel.annotations[cols].isna().all().all()  # unknown, not "clicked"
    both = load_release(new).annotations
    assert rel.annotations.drop(columns=cols).equals(both.drop(columns=cols))
    d = diff_releases(old, new)
    assert d["provenance_compared"] is False and d["provenance"] == [] and d["changed"] == []
    assert load_release(old, require_manifest=False).annotations[cols].isna().all().all()


def test_verify_catches_bad_provenance(tmp_path):
    out = written_release(tmp_path)
    rel = load_release(out)
    df = rel.annotations.copy()
    labelled = df.index[df["age"].notna()]
    unlabelled = df.index[df["age"].isna()]
    df.loc[labelled[0], "age_provenance"] = "guessed"
    df.loc[unlabelled[0], "age_provenance"] = "clicked"
    df.loc[labelled[1], "age_provenance"] = None
    pq.write_table(pa.Table.from_pandas(df, schema=arrow_schema(rel.taxonomy), preserve_index=False),
                   out / "annotations.parquet")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["annotations.parquet"] = file_digest(out / "annotations.parquet")
    (out / "manifest.json").write_bytes(dumps(manifest))
    problems = verify_release(out)
    assert any("invalid provenance 'guessed' in age_provenance" in p for p in problems), problems
    crop = int(df.at[unlabelled[0], "crop_id"])
    assert f"annotations: 1 crops have age_provenance but no age (e.g. crop {crop})" in problems
    crop = int(df.at[labelled[1], "crop_id"])
    assert f"annotations: 1 crops have age but no age_provenance (e.g. crop {crop})" in problems
