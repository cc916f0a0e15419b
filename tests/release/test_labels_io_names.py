"""`portrait labels import` with identities given by character name (labels made in another tool):
characters found or created per movie, gender from the file's gender rows, all or nothing."""

import pytest
from release_project import import_file, label_rows
from sqlalchemy import func, select

from portrait_builder.cli import main
from portrait_builder.release import LabelImportError, import_labels
from portrait_builder.store import Annotator, Identity, current_labels


def _counts(project):
    with project.session() as s:
        identities = s.scalar(select(func.count()).select_from(Identity))
    return label_rows(project), identities


def _identities(project):
    with project.session() as s:
        return {r.id: r for r in s.execute(select(Identity.id, Identity.video_id, Identity.name, Identity.gender,
                                                  Identity.exemplar_crop_id, Identity.created_by))}  # fmt: skip


def test_import_by_name_creates_characters_once_per_movie(project, built, tmp_path, capsys):
    c = built.crops  # c[12:16]: movie 1 without identity; c[30:34]: movie 2 without identity
    rows = [
        (c[12], "identity", "Celia", "ada"),  # row 1: new in movie 1
        (c[13], "identity", " celia ", "ada"),  # row 2: the same character (spaces and case aside)
        (c[14], "gender", "female", "ada"),  # row 3: gives Celia's gender (before her row: order does not matter)
        (c[14], "identity", "CELIA", "ada"),  # row 4
        (c[30], "identity", "Celia", "ada"),  # row 5: another movie, another character; no gender row -> unsure
        (c[31], "identity", "d", "ada"),  # row 6: movie 2's existing character D
        (c[15], "identity", "unknown", "ada"),  # row 7: the taxonomy value, not a name
        (c[32], "identity", "name:Unknown", "ada"),  # row 8: a character called Unknown
        (c[33], "identity", str(built.identities["E"]), "ada"),  # row 9: ids still work
        (c[13], "gender", "unsure", "ada"),  # row 10: unsure does not decide a character's gender
    ]
    before = _identities(project)
    labels_before, _ = _counts(project)
    assert main(["labels", "import", str(project.root), str(import_file(tmp_path, rows))]) == 0
    out = capsys.readouterr().out
    assert "imported 10 labels (gender 2, identity 8)" in out and "created 3 character(s)" in out
    after = _identities(project)
    new = {i: r for i, r in after.items() if i not in before}
    assert len(new) == 3
    with project.session() as s:
        ada = s.scalar(select(Annotator.id).where(Annotator.name == "ada"))
        cur = current_labels(s, c)
    celia1 = next(r for r in new.values() if r.name == "Celia" and r.exemplar_crop_id == c[12])
    celia2 = next(r for r in new.values() if r.name == "Celia" and r.exemplar_crop_id == c[30])
    unknown = next(r for r in new.values() if r.name == "Unknown")
    assert celia1.gender == "female" and celia2.gender == "unsure" and unknown.gender == "unsure"
    assert celia1.video_id == after[built.identities["A"]].video_id  # movie 1
    assert celia2.video_id == unknown.video_id == after[built.identities["D"]].video_id  # movie 2
    assert {celia1.created_by, celia2.created_by, unknown.created_by} == {ada}
    assert [cur[x]["identity"] for x in (c[12], c[13], c[14])] == [str(celia1.id)] * 3
    assert cur[c[30]]["identity"] == str(celia2.id) and cur[c[31]]["identity"] == str(built.identities["D"])
    assert cur[c[15]]["identity"] == "unknown" and cur[c[32]]["identity"] == str(unknown.id)
    assert cur[c[33]]["identity"] == str(built.identities["E"]) and cur[c[14]]["gender"] == "female"
    assert _counts(project)[0] == labels_before + 10

    # a second file with the same names finds the characters made by the first: none created
    again = import_file(tmp_path, [(c[12], "identity", "Celia", "ada"), (c[30], "identity", "celia", "ada")], "again.csv")
    summary = import_labels(project, again)
    assert summary.created == () and len(_identities(project)) == len(after)


def test_bad_name_rows_roll_back_new_characters_too(project, built, tmp_path, capsys):
    c = built.crops
    with project.write() as s:  # two characters of movie 1 share a name: a name cannot tell them apart
        vid = s.get(Identity, built.identities["A"]).video_id
        s.add_all([Identity(video_id=vid, name="Twin"), Identity(video_id=vid, name="twin")])
    rows = [
        (c[12], "identity", "Celia", "ada"),  # row 1: Celia given two genders (rows 2 and 4): one line
        (c[12], "gender", "female", "ada"),  # row 2
        (c[13], "identity", "Celia", "ada"),  # row 3
        (c[13], "gender", "male", "ada"),  # row 4
        (c[30], "identity", "Dora", "ada"),  # row 5: fine on its own; must not survive
        (c[15], "identity", "Twin", "ada"),  # row 6: ambiguous
        (999_999, "identity", "Nobody", "ada"),  # row 7: no such crop
        (c[31], "identity", "Eve", "nobody"),  # row 8: no such annotator
    ]
    before = _counts(project)
    path = import_file(tmp_path, rows)
    assert main(["labels", "import", str(project.root), str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "row 1: new character 'Celia' of movie 'Movie 1' is given two genders: female (row 2) and male (row 4)"
    assert err[1].startswith("row 6: 2 characters of movie 'Movie 1' are named 'Twin' (ids ") and err[1].endswith("give the id")
    assert err[2] == "row 7: no crop with id 999999"
    assert err[3] == "row 8: no annotator named 'nobody'"
    assert err[4] == "portrait: error: 4 bad rows; nothing was imported"
    assert _counts(project) == before  # neither labels nor the characters Dora and Celia were kept
    with pytest.raises(LabelImportError) as exc:
        import_labels(project, path)
    assert len(exc.value.problems) == 4
