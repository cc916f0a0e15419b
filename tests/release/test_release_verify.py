"""verify catches tampering and broken split invariants; diff lists added/removed/moved crops and label changes."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
from release_project import build_project

from portrait_builder.cli import main
from portrait_builder.common import file_digest
from portrait_builder.release import ReleaseConfig, diff_releases, load_release, verify_release, write_release
from portrait_builder.release.manifest import dumps
from portrait_builder.release.records import arrow_schema
from portrait_builder.store import Annotator, SplitAssignment, add_label

QUIET = ReleaseConfig(progress=False)


def test_verify_catches_a_tampered_file(project, built, tmp_path, capsys):
    out = write_release(project, "1.0.0", tmp_path / "rel", ReleaseConfig(progress=False, link="copy"))
    assert verify_release(out) == []
    victim = load_release(out).annotations["file"].iloc[3]
    (out / victim).write_bytes((out / victim).read_bytes()[:-10] + b"tampered!!")
    (out / "extra.txt").write_text("not released")
    problems = verify_release(out)
    assert f"checksum mismatch: {victim}" in problems
    assert "file not in the manifest: extra.txt" in problems
    assert main(["release", "verify", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"checksum mismatch: {victim}" in err and "2 problem(s)" in err


def _rewrite(out, df, taxonomy):
    """Replace annotations.parquet and re-seal the manifest, as a careless hand edit would."""
    pq.write_table(pa.Table.from_pandas(df, schema=arrow_schema(taxonomy), preserve_index=False),
                   out / "annotations.parquet")  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["annotations.parquet"] = file_digest(out / "annotations.parquet")
    (out / "manifest.json").write_bytes(dumps(manifest))


def test_verify_catches_broken_split_invariants(project, built, tmp_path):
    out = write_release(project, "1.0.0", tmp_path / "rel", ReleaseConfig(progress=False, link="copy"))
    rel = load_release(out)
    df = rel.annotations.copy()
    train_pid = int(df.loc[(df["subset"] == "train") & df["identity"].notna(), "identity"].iloc[0])
    query = df.index[df["subset"] == "query"]
    # 1) a query of a test identity relabelled to a train identity: ids leak and that query has no gallery match
    df.loc[query[0], "identity"] = train_pid
    # 2) a query loses its identity
    df.loc[query[1], "identity"] = None
    _rewrite(out, df, rel.taxonomy)
    problems = verify_release(out)
    assert any(p.startswith("split: 1 identities are in train and test") for p in problems), problems
    assert any("query crops have no identity" in p for p in problems), problems
    assert any("query identities have no gallery image" in p for p in problems), problems
    assert any(p.startswith("bad file name") for p in problems)  # names still say the old pids

    # 3) the only other-group gallery images of a query's identity join the query's group
    df = rel.annotations.copy()
    q = df[df["subset"] == "query"].iloc[0]
    same = (df["subset"] == "gallery") & (df["identity"] == q["identity"])
    df.loc[same, "group"] = q["group"]
    _rewrite(out, df, rel.taxonomy)
    problems = verify_release(out)
    assert problems == [
        f"split: 1 query crops have no gallery image of their identity outside their group (e.g. crop {q['crop_id']})"
    ]


def test_diff_lists_added_removed_moved_changed(project, built, tmp_path, capsys):
    a = write_release(project, "1.0.0", tmp_path / "a", QUIET)
    first, moved, new = built.crops[0], built.crops[9], built.unassigned[0]
    with project.write() as s:
        ann = s.query(Annotator).one()
        add_label(s, project.taxonomy, first, "age", "elderly", annotator_id=ann.id)
        add_label(s, project.taxonomy, first, "expression", ["fear", "anger"], annotator_id=ann.id)
        s.get(SplitAssignment, ("default", built.crops[-2])).subset = "train"  # a distractor becomes train junk
        s.add(SplitAssignment(split="default", crop_id=new, subset="gallery"))
        s.delete(s.get(SplitAssignment, ("default", moved)))
    b = write_release(project, "1.1.0", tmp_path / "b", QUIET)
    d = diff_releases(a, b)
    assert d["added"] == [new] and d["removed"] == [moved]
    assert d["moved"] == [{"crop_id": built.crops[-2], "old": "gallery", "new": "train"}]
    old = load_release(a).annotations.set_index("crop_id")
    assert {(c["crop_id"], c["attribute"], str(c["old"]), str(c["new"])) for c in d["changed"]} == {
        (first, "age", str(old.at[first, "age"]), "elderly"),
        (first, "expression", str(old.at[first, "expression"]), "['anger', 'fear']"),
    }
    assert d["same_store_fingerprint"] is False
    assert diff_releases(a, a)["summary"] == {"added": 0, "removed": 0, "moved": 0, "changed": 0,
                                              "provenance": 0, "common": len(old)}  # fmt: skip
    assert main(["release", "diff", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    assert f"+ crop {new}" in text and f"- crop {moved}" in text and "1.0.0 -> 1.1.0" in text


def test_release_pids_renumbered_but_identity_diff_is_stable(project, tmp_path):
    built = build_project(project)
    a = write_release(project, "1.0.0", tmp_path / "a", QUIET)
    # drop the first identity's crops from the split: every later pid shifts down by one
    first_identity = min(built.identities.values())
    ra = load_release(a)
    pid1 = [i["pid"] for i in ra.manifest["identities"] if i["store_identity"] == first_identity][0]
    gone = ra.annotations.loc[ra.annotations["identity"] == pid1, "crop_id"].tolist()
    with project.write() as s:
        for crop_id in gone:
            s.delete(s.get(SplitAssignment, ("default", crop_id)))
    b = write_release(project, "1.0.1", tmp_path / "b", QUIET)
    d = diff_releases(a, b)
    assert sorted(d["removed"]) == sorted(gone)
    assert [c for c in d["changed"] if c["attribute"] == "identity"] == []  # same store identities
