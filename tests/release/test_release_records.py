"""Pure release rules: Market-1501 names, pid relabelling, the annotation contract, captions and Q&A."""

import pandas as pd
import pytest
from release_project import TRACKS, frame_equivalent

from portrait_builder.errors import UserError
from portrait_builder.release import naming, records
from portrait_builder.release.records import VideoInfo, build_table, caption, qa_pairs
from portrait_builder.taxonomy import load_taxonomy

TAX = load_taxonomy()


def test_names_follow_market1501_and_parse_back():
    # Market-1501 itself: "0002_c1s1_000451_03.jpg", "-1_c1s1_000401_03.jpg", "0000_c1s1_000151_01.jpg"
    assert naming.file_name(naming.stem("gallery", 2, 1, 1, 451), 3) == "0002_c1s1_000451_03.jpg"
    assert naming.file_name(naming.stem("train", None, 1, 1, 401), 3) == "-1_c1s1_000401_03.jpg"
    assert naming.file_name(naming.stem("gallery", None, 1, 1, 151), 1) == "0000_c1s1_000151_01.jpg"
    # wide fields are not truncated: video ordinal 12, shot 31, frame 1234567, pid 12345, k 101
    name = naming.file_name(naming.stem("query", 12345, 12, 31, 1234567), 101)
    assert name == "12345_c12s31_1234567_101.jpg"
    assert naming.parse_name(name) == naming.ParsedName(12345, 12, 31, 1234567, 101)
    assert naming.parse_name("-1_c3s2_000007_01.jpg").pid == -1
    with pytest.raises(ValueError):
        naming.stem("query", None, 1, 1, 1)
    with pytest.raises(ValueError):
        naming.parse_name("0001_c1_000001_01.jpg")


def _videos(frame):
    return {int(v): VideoInfo(int(v), f"Movie {v}", f"{int(v):064x}") for v in frame["video_id"].unique()}


def test_build_table_relabels_and_names(project, built):
    frame = frame_equivalent(project)
    with project.session() as s:
        from sqlalchemy import select

        from portrait_builder.store import Track

        shots = dict(s.execute(select(Track.id, Track.shot_index)).all())
    table = build_table(frame, TAX, _videos(frame), shots)
    ann = table.annotations
    attrs = ["gender", "age", "physique", "height", "body_posture", "arm_posture", "expression"]
    assert list(ann.columns) == [*records.CORE_COLUMNS, *attrs, "identity_provenance",
                                 *(f"{a}_provenance" for a in attrs)]  # fmt: skip
    # the frame carries no provenance here: the columns exist, all null (the writer adds them from the store)
    assert ann[[c for c in ann.columns if c.endswith("_provenance")]].isna().all().all()
    assert len(ann) == sum(n for *_, n in TRACKS) - len(built.unassigned) and table.excluded == len(built.unassigned)
    assert ann["crop_id"].is_monotonic_increasing and ann["file"].is_unique
    # release pids are 1..N contiguous, one per store identity, sorted by store id
    assert sorted(ann["identity"].dropna().unique()) == list(range(1, len(built.identities) + 1))
    assert [i["store_identity"] for i in table.identities] == sorted(built.identities.values())
    for row in ann.itertuples():
        parsed = naming.parse_name(row.file.split("/")[1])
        assert row.file.split("/")[0] == naming.SUBSET_DIRS[row.subset]
        want = row.identity if not pd.isna(row.identity) else (-1 if row.subset == "train" else 0)
        assert parsed.pid == want and parsed.frame == row.frame
        assert parsed.cam == [v["cam"] for v in table.videos if v["video_id"] == row.video_id][0]
        assert parsed.seq == shots[row.track] + 1
        assert row.phash is None or (len(row.phash) == 16 and int(row.phash, 16) >= 0)
    # the unsure value is kept, missing is null, expression is a list
    assert "unsure" in set(ann["age"].dropna()) and ann["age"].isna().any()
    assert all(isinstance(v, list) for v in ann["expression"].dropna())
    assert ann["x1"].dtype == "float32" and ann["identity"].dtype == "Int64"


def test_two_unidentified_people_in_one_frame_get_k():
    frame = pd.DataFrame({
        "crop_id": [5, 3, 9], "path": ["a", "b", "c"], "video_id": [7, 7, 7], "track_id": [1, 2, 3],
        "frame_index": [10, 10, 10], "x1": [0.0] * 3, "y1": [0.0] * 3, "x2": [1.0] * 3, "y2": [1.0] * 3,
        "phash": pd.array([-1, 0, 1], dtype="Int64"), "phash_group": pd.array([1, 2, 3], dtype="Int64"),
        "identity": pd.array([None, None, None], dtype="Int64"), "subset": ["gallery", "gallery", "train"],
    })  # fmt: skip
    table = build_table(frame, TAX, {7: VideoInfo(7, "T", "f" * 64)}, {1: 0, 2: 0, 3: 4})
    assert table.annotations["file"].tolist() == [
        "bounding_box_test/0000_c1s1_000010_01.jpg",  # crop 3 first: k follows crop-id order
        "bounding_box_test/0000_c1s1_000010_02.jpg",
        "bounding_box_train/-1_c1s5_000010_01.jpg",
    ]
    assert table.annotations["phash"].tolist() == ["0000000000000000", "ffffffffffffffff", "0000000000000001"]
    frame.loc[0, "subset"] = "query"
    with pytest.raises(UserError, match="query crops have no identity"):
        build_table(frame, TAX, {7: VideoInfo(7, "T", "f" * 64)}, {1: 0, 2: 0, 3: 4})


def test_captions_from_labels():
    full = {"gender": "female", "age": "young_adult", "physique": "medium", "height": "average",
            "body_posture": "standing", "arm_posture": "arms_crossed", "expression": ["happiness"]}  # fmt: skip
    assert caption(full, TAX) == (
        "A young adult woman of medium build and average height, standing with arms crossed, looking happy."
    )
    assert caption({"gender": "male", "age": "elderly", "expression": ["surprise", "fear"]}, TAX) == (
        "An elderly man, looking afraid and surprised."
    )
    assert caption({"gender": "female", "age": "child", "height": "tall", "arm_posture": "holding_object"}, TAX) == (
        "A tall girl, holding something."
    )
    # unsure and missing parts are skipped, not spelled out
    assert caption({"gender": "unsure", "age": "unsure", "expression": ["unsure"], "body_posture": None}, TAX) == "A person."
    assert caption({"expression": ["neutral"], "body_posture": "lying"}, TAX) == (
        "A person, lying down, with a neutral expression."
    )


def test_qa_pairs_skip_unsure_and_list_options():
    pairs = qa_pairs({"gender": "male", "age": "unsure", "expression": ["anger", "disgust"]}, TAX)
    assert [p["attribute"] for p in pairs] == ["gender", "expression"]
    assert pairs[0]["answer"] == "Male" and pairs[0]["options"] == ["Male", "Female"]
    assert pairs[1]["answer"] == "Anger, Disgust" and pairs[1]["multilabel"] is True
    assert "unsure" not in " ".join(pairs[1]["options"]).lower()


def test_store_fingerprint_hashes_chunks_as_one_json_text(project, built, monkeypatch):
    """store_fingerprint hashes the rows a chunk at a time; the digest must be that of the whole
    frame's JSON text in crop-id order (the fingerprint of every earlier release), whatever the chunk."""
    import hashlib

    import numpy as np

    from portrait_builder.stats import project_frame

    frame = project_frame(project)
    assert len(frame) > 7
    shuffled = frame.iloc[np.random.default_rng(0).permutation(len(frame))]  # order must not matter
    cols = [*records.FRAME_COLUMNS, *[c for c in records.attribute_columns(TAX) if c in frame.columns]]
    whole = frame.sort_values("crop_id", kind="stable")[cols].copy()
    for c in ("x1", "y1", "x2", "y2"):
        whole[c] = whole[c].astype("float32").astype("float64")
    for c in ("phash", "phash_group", "identity"):
        whole[c] = whole[c].astype("Int64")
    expected = hashlib.sha256(whole.to_json(orient="values", double_precision=15).encode("utf-8")).hexdigest()
    for chunk in (1, 3, len(frame), 10 * len(frame)):
        monkeypatch.setattr(records, "FINGERPRINT_CHUNK", chunk)
        assert records.store_fingerprint(shuffled, TAX) == expected
    empty = frame.iloc[:0]
    assert records.store_fingerprint(empty, TAX) == hashlib.sha256(b"[]").hexdigest()


@pytest.mark.parametrize("memo", [0, 5, 100_000])
def test_jsonl_lines_from_templates_equal_encoding_each_row(monkeypatch, memo):
    """captions.jsonl and qa.jsonl lines are filled-in templates (one per label value or label set);
    each must be exactly json.dumps of the row's caption or pair with its crop id and file, sorted keys."""
    import json
    import random

    monkeypatch.setattr(records, "CAPTION_MEMO", memo)
    attrs = records.attribute_columns(TAX)
    rng = random.Random(0)
    rows = []
    for i in range(400):
        row = {"crop_id": 10 * i + 1, "file": f'bounding_box_train/{i:04d}_c1s1_000001_01 "x".jpg'}
        for a in attrs:
            attr = TAX.attribute(a)
            if rng.random() < 0.3:
                row[a] = None
            elif attr.multilabel:
                row[a] = rng.sample(list(attr.value_names), rng.randint(1, 2))
            else:
                row[a] = rng.choice(list(attr.value_names))
        rows.append(row)
    got = list(records.iter_jsonl(pd.DataFrame(rows), TAX))
    assert len(got) == len(rows) and sum(len(qa) for _, qa in got) > len(rows)
    for row, (line, qa) in zip(rows, got, strict=True):
        labels = {a: row[a] for a in attrs}
        base = {"crop_id": row["crop_id"], "file": row["file"]}
        assert line == json.dumps({**base, "caption": caption(labels, TAX)}, sort_keys=True)
        assert qa == [json.dumps({**base, **pair}, sort_keys=True) for pair in qa_pairs(labels, TAX)]


def test_manifest_validation_view_keeps_the_verdict():
    """The manifest is validated with the files entries that can change the verdict: a bad digest among
    many good ones is still reported, required names stay, and a files schema with other rules gets all."""
    from portrait_builder.release import manifest as mf

    schema = mf.manifest_schema()
    good = "a" * 64
    files = {f"bounding_box_train/{i:04d}.jpg": good for i in range(1000)}
    files.update({name: "b" * 64 for name in schema["properties"]["files"]["required"]})
    view = mf.validation_view({"files": files}, schema)
    assert len(view["files"]) == 1 + len(schema["properties"]["files"]["required"])
    files["bounding_box_train/0500.jpg"] = "not a digest"
    view = mf.validation_view({"files": files}, schema)
    assert "not a digest" in view["files"].values()
    assert any("not a digest" in p for p in mf.schema_problems(view, schema, "manifest.json", limit=50))
    strict = {**schema, "properties": {**schema["properties"],
                                       "files": {**schema["properties"]["files"], "maxProperties": 5}}}
    assert mf.validation_view({"files": files}, strict)["files"] == files
