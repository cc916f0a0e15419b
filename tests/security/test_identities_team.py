"""Characters on a team store (PostgreSQL, row-level security, each person their own login): the
identity annotator lists, merges (and undoes the merge in the app), renames and imports characters
by name; an annotator of another attribute is refused each write in one line, and nothing changes."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select


def _one_line(capsys, code):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("portrait: error: "), err
    return err[0]


def test_characters_as_each_login(team, as_login, capsys, tmp_path):
    from portrait_builder.annotation import AnnotationService, list_identities, rename_identity
    from portrait_builder.cli import main
    from portrait_builder.store import Crop, Identity, Label, current_labels

    project = as_login("ann_id")
    with project.session() as s:
        video, = s.execute(select(Crop.video_id).order_by(Crop.id).limit(1)).one()
        crops = list(s.scalars(select(Crop.id).where(Crop.video_id == video).order_by(Crop.id)))
    with AnnotationService(project, None) as svc:  # the login is the annotator
        keep = svc.new_identity(crops[0], "female", "Keep", also=crops[1:3])
        other = svc.new_identity(crops[3], "male", "Other")

    assert main(["identities", "merge", str(team.root), str(keep.id), str(other.id)]) == 0
    capsys.readouterr()
    with project.session() as s:
        assert current_labels(s, [crops[3]])[crops[3]] == {"identity": str(keep.id), "gender": "female"}
    with AnnotationService(project, None) as svc:  # the app, opened again: the merge is its last action
        assert svc.undo().crop_ids == [crops[3]]
    with project.session() as s:
        assert current_labels(s, [crops[3]])[crops[3]] == {"identity": str(other.id), "gender": "male"}
    assert rename_identity(project, keep.id, "Kept").name == "Kept"

    path = tmp_path / "names.csv"
    pd.DataFrame([(crops[5], "identity", "Newcomer", "ann_id"), (crops[5], "gender", "female", "ann_id")],
                 columns=["crop_id", "attribute", "value", "annotator"]).to_csv(path, index=False)  # fmt: skip
    assert main(["labels", "import", str(team.root), str(path)]) == 0
    assert "created 1 character(s)" in capsys.readouterr().out
    created = {c.name: c for c in list_identities(project)}["Newcomer"]
    assert (created.gender, created.crops) == ("female", 1)

    # an annotator of age: may read the characters, may neither merge nor rename them
    as_login("ann_age")
    with project.session() as s:
        before = (s.scalar(select(func.count()).select_from(Label)), list(s.execute(select(Identity.id, Identity.name))))
    assert main(["identities", "list", str(team.root)]) == 0 and "Kept" in capsys.readouterr().out
    line = _one_line(capsys, main(["identities", "merge", str(team.root), str(keep.id), str(other.id)]))
    assert "may not open the 'identity' queue" in line
    line = _one_line(capsys, main(["identities", "rename", str(team.root), str(keep.id), "Mallory"]))
    assert "refused to rename character" in line and team.logins["ann_age"] in line
    with project.session() as s:
        assert (s.scalar(select(func.count()).select_from(Label)), list(s.execute(select(Identity.id, Identity.name)))) == before
