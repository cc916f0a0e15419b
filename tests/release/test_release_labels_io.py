"""portrait labels export / import: every crop out; labels in through add_label, all or nothing."""

import pandas as pd
import pytest
from release_project import import_file, label_rows
from sqlalchemy import select

from portrait_builder.cli import main
from portrait_builder.errors import UserError
from portrait_builder.release import LabelImportError, export_labels, import_labels
from portrait_builder.store import Crop, Label, current_labels


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_every_crop_with_current_labels(project, built, tmp_path, suffix):
    out = tmp_path / f"labels{suffix}"
    assert export_labels(project, out) == len(built.crops)
    df = pd.read_csv(out, keep_default_na=False) if suffix == ".csv" else pd.read_parquet(out)
    assert df.columns[:10].tolist() == ["crop_id", "file", "video", "video_id", "track", "frame", "x1", "y1", "x2", "y2"]
    assert df["crop_id"].tolist() == built.crops
    with project.session() as s:
        current = current_labels(s)
        crop = s.get(Crop, built.crops[2])
    row = df.set_index("crop_id").loc[built.crops[2]]
    assert row["file"] == crop.path and row["frame"] == crop.frame_index and row["x2"] == pytest.approx(crop.x2)
    for attr in project.taxonomy.names:
        want = current.get(built.crops[2], {}).get(attr)
        got = row[attr]
        assert (None if pd.isna(got) or got == "" else str(got)) == want
    assert "|" in "".join(str(v) for v in df["expression"])  # multi-label as stored text


def test_import_adds_labels_in_one_go(project, built, tmp_path, capsys):
    c = built.crops
    path = import_file(tmp_path, [(c[0], "age", "elderly", "ada"), (c[1], "expression", "fear|anger", "ada"),
                             (c[2], "identity", built.identities["A"], "ada")])  # fmt: skip
    before = label_rows(project)
    assert main(["labels", "import", str(project.root), str(path)]) == 0
    assert "imported 3 labels (age 1, expression 1, identity 1)" in capsys.readouterr().out
    assert label_rows(project) == before + 3
    with project.session() as s:
        cur = current_labels(s, c[:3])
        sources = set(s.scalars(select(Label.source).where(Label.id > before)))
    assert cur[c[0]]["age"] == "elderly" and cur[c[1]]["expression"] == "anger|fear"
    assert cur[c[2]]["identity"] == str(built.identities["A"]) and sources == {"import"}


def test_import_is_all_or_nothing_with_one_line_per_bad_row(project, built, tmp_path, capsys):
    c = built.crops
    rows = [(c[0], "age", "elderly", "ada")] * 16 + [
        (c[1], "gender", "robot", "ada"),  # row 17
        (999_999, "age", "child", "ada"),  # row 18
        (c[2], "mood", "happy", "ada"),  # row 19
        (c[3], "age", "child", "nobody"),  # row 20
        ("x7", "age", "child", "ada"),  # row 21
        (c[4], "identity", built.identities["E"], "ada"),  # row 22: E belongs to the other movie
        (c[5], "expression", "unsure|happiness", "ada"),  # row 23
    ]
    path = import_file(tmp_path, rows)
    before = label_rows(project)
    assert main(["labels", "import", str(project.root), str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("row 17: invalid value 'robot' for gender")
    assert err[1] == "row 18: no crop with id 999999"
    assert err[2].startswith("row 19: unknown attribute 'mood'")
    assert err[3] == "row 20: no annotator named 'nobody'"
    assert err[4] == "row 21: crop id 'x7' is not an integer"
    assert err[5].startswith("row 22: identity") and "another video" in err[5]
    assert err[6].startswith("row 23: expression: 'unsure' cannot be combined")
    assert err[7] == "portrait: error: 7 bad rows; nothing was imported"
    assert label_rows(project) == before  # the 16 good rows were rolled back too
    with pytest.raises(LabelImportError) as exc:
        import_labels(project, path)
    assert len(exc.value.problems) == 7


def test_import_file_errors(project, built, tmp_path):
    with pytest.raises(UserError, match="unsupported format"):
        import_labels(project, tmp_path / "x.xlsx")
    bad = tmp_path / "bad.csv"
    bad.write_text("crop_id,value\n1,child\n")
    with pytest.raises(UserError, match="lacks column"):
        import_labels(project, bad)
    parquet = tmp_path / "in.parquet"
    pd.DataFrame({"crop_id": [built.crops[0]], "attribute": ["height"], "value": ["tall"],
                  "annotator": ["ada"]}).to_parquet(parquet)  # fmt: skip
    assert import_labels(project, parquet).by_attribute == {"height": 1}
