"""`portrait identities list|rename|merge` and the service's merge, on SQLite and PostgreSQL.

The reference for every count is the store itself, read independently (current_labels / label_history):
a merge must leave every crop of OTHER labelled KEEP, keep the old rows, and undo must give them back.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from portrait_builder.annotation import AnnotationService, list_identities, merge_identities
from portrait_builder.cli import main
from portrait_builder.errors import UserError
from portrait_builder.store import Annotator, Crop, Identity, Label, current_labels, label_history


def _by_video(project, crop_ids):
    with project.session() as s:
        rows = s.execute(select(Crop.id, Crop.video_id).where(Crop.id.in_(crop_ids)).order_by(Crop.id)).all()
    out: dict[int, list[int]] = {}
    for crop_id, video_id in rows:
        out.setdefault(video_id, []).append(crop_id)
    return out


@pytest.fixture
def cast(annotated):
    """Three characters of movie 1 (Ann: 3 crops, female; Anne: 2 crops, male; Bo: 1 crop) and one of
    movie 2 (Zed), labelled through the app's service by ann_id; an age label on one of Anne's crops."""
    project, crop_ids = annotated
    videos = _by_video(project, crop_ids)
    (v1, c1), (v2, c2) = sorted(videos.items())[:2]
    with AnnotationService(project, "ann_id") as svc:
        ann = svc.new_identity(c1[0], "female", "Ann", also=c1[1:3])
        anne = svc.new_identity(c1[3], "male", "Anne", also=[c1[4]])
        bo = svc.new_identity(c1[5], "male", "Bo")
        zed = svc.new_identity(c2[0], "male", "Zed", also=[c2[1]])
    with AnnotationService(project, "ann_age") as svc:
        svc.set_label(c1[4], "age", "elderly")
    return project, {"v1": v1, "v2": v2, "c1": c1, "c2": c2, "ann": ann.id, "anne": anne.id, "bo": bo.id,
                     "zed": zed.id}  # fmt: skip


def _counts(project):
    with project.session() as s:
        return s.scalar(select(func.count()).select_from(Label)), s.scalar(select(func.count()).select_from(Identity))


def test_list_matches_the_store(cast, capsys):
    project, c = cast
    chars = list_identities(project)
    with project.session() as s:
        current = current_labels(s)
    reference = {}
    for labels in current.values():
        if labels.get("identity", "").isdigit():
            reference[int(labels["identity"])] = reference.get(int(labels["identity"]), 0) + 1
    assert {ch.id: ch.crops for ch in chars} == reference == {c["ann"]: 3, c["anne"]: 2, c["bo"]: 1, c["zed"]: 2}
    ann = next(ch for ch in chars if ch.id == c["ann"])
    assert (ann.name, ann.gender, ann.video_id, ann.exemplar_crop_id) == ("Ann", "female", c["v1"], c["c1"][0])
    assert (project.crop_root / ann.exemplar_path).is_file()

    assert main(["identities", "list", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert out.count("movie ") == 2 and "3 character(s)" in out and "1 character(s)" in out
    ann_line = next(line for line in out.splitlines() if " Ann " in line)
    assert ann_line.split()[:4] == [str(c["ann"]), "Ann", "female", "3"] and f"crop {c['c1'][0]}" in ann_line

    assert main(["identities", "list", str(project.root), "--video", str(c["v2"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(d["id"], d["name"], d["crops"]) for d in data] == [(c["zed"], "Zed", 2)]
    title = data[0]["video"]
    assert main(["identities", "list", str(project.root), "--video", title, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == data

    assert main(["identities", "list", str(project.root), "--video", "no such movie"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("portrait: error: no movie 'no such movie'") and title in err[0]


def test_rename(cast, capsys):
    project, c = cast
    assert main(["identities", "rename", str(project.root), str(c["bo"]), "  Beau  "]) == 0
    assert capsys.readouterr().out.strip().endswith("is now 'Beau'")
    assert {ch.id: ch.name for ch in list_identities(project)}[c["bo"]] == "Beau"
    for args, message in [
        ([str(c["bo"]), "ann"], f"character {c['ann']} of this movie is already named 'Ann'"),  # letter case aside
        ([str(c["bo"]), " "], "the new name must not be empty"),
        (["999999", "X"], "no character with id 999999"),
        (["x1", "X"], "'x1' is not a character id"),
    ]:
        assert main(["identities", "rename", str(project.root), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"portrait: error: {message}"), err
    # the same name in another movie is another character: allowed
    assert main(["identities", "rename", str(project.root), str(c["zed"]), "Ann"]) == 0


def test_merge_moves_every_label_keeps_history_and_undoes_in_the_app(cast, capsys):
    project, c = cast
    anne_crops = [c["c1"][3], c["c1"][4]]
    labels_before, idents_before = _counts(project)
    assert main(["identities", "merge", str(project.root), str(c["ann"]), str(c["anne"]), "--annotator", "boss"]) == 0
    out = capsys.readouterr().out
    assert "2 crop(s) relabelled, 2 gender label(s) set to 'female'" in out and "now has 5 crop(s)" in out
    with project.session() as s:
        current = current_labels(s, anne_crops)
        boss = s.scalar(select(Annotator.id).where(Annotator.name == "boss"))
        history = label_history(s, anne_crops[1])
    for crop in anne_crops:
        assert current[crop]["identity"] == str(c["ann"]) and current[crop]["gender"] == "female"
    assert current[anne_crops[1]]["age"] == "elderly"  # other attributes untouched
    # append-only: the old identity and gender rows are still there, the merge added 2 x 2 rows by boss
    ident_history = [(h.value, h.annotator_id) for h in history if h.attribute == "identity"]
    assert ident_history[0][0] == str(c["anne"]) and ident_history[-1] == (str(c["ann"]), boss)
    assert _counts(project) == (labels_before + 4, idents_before)  # no character deleted
    chars = {ch.id: ch.crops for ch in list_identities(project)}
    assert chars[c["ann"]] == 5 and chars[c["anne"]] == 0

    # the app, opened later as boss, has the merge as its last action: undo gives every label back
    with AnnotationService(project, "boss") as svc:
        assert svc.can_undo
        undo = svc.undo()
        assert sorted(undo.crop_ids) == anne_crops
        with project.session() as s:
            restored = current_labels(s, anne_crops)
        for crop in anne_crops:
            assert restored[crop]["identity"] == str(c["anne"]) and restored[crop]["gender"] == "male"
        assert {ch.id: ch.crops for ch in list_identities(project)}[c["anne"]] == 2
        svc.redo()
        with project.session() as s:
            assert all(v["identity"] == str(c["ann"]) for v in current_labels(s, anne_crops).values())
    assert _counts(project)[0] == labels_before + 12  # merge, undo and redo: 4 rows each, none rewritten


def test_merge_inside_the_app_is_one_undoable_action(cast):
    project, c = cast
    with AnnotationService(project, "ann_id") as svc:
        result = svc.merge_identities(c["ann"], c["bo"])
        assert (result.moved, result.genders, result.keep.crops, result.other.crops) == (1, 1, 4, 0)
        assert svc.undo().crop_ids == [c["c1"][5]]
        with project.session() as s:
            assert current_labels(s, [c["c1"][5]])[c["c1"][5]] == {"identity": str(c["bo"]), "gender": "male"}
        assert svc.can_undo  # the clicks before the merge are still on the stack


def test_merge_refusals_are_one_line_and_change_nothing(cast, capsys):
    project, c = cast
    before = _counts(project)
    root = str(project.root)
    titles = {ch.id: ch.video for ch in list_identities(project)}
    cases = [
        ([str(c["ann"]), str(c["zed"]), "--annotator", "boss"],
         f"characters {c['ann']} (movie {titles[c['ann']]!r}) and {c['zed']} (movie {titles[c['zed']]!r}) are in "
         "different movies; only characters of one movie can be merged"),
        ([str(c["ann"]), str(c["ann"]), "--annotator", "boss"], f"cannot merge character {c['ann']} with itself"),
        ([str(c["ann"]), "999999", "--annotator", "boss"], "no character with id 999999"),
        ([str(c["ann"]), "bo", "--annotator", "boss"], "'bo' is not a character id"),
        ([str(c["ann"]), str(c["bo"]), "--annotator", "ann_age"], "ann_age is assigned 'age'"),
        ([str(c["ann"]), str(c["bo"]), "--annotator", "nobody"], "no annotator 'nobody'"),
    ]
    # no annotator named: SQLite asks for one; PostgreSQL takes the login, here the store's owner, no annotator
    assert main(["identities", "merge", root, str(c["ann"]), str(c["bo"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("portrait: error: ") and "(--annotator NAME)" in err[0], err
    for args, message in cases:
        assert main(["identities", "merge", root, *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"portrait: error: {message}"), err
    assert _counts(project) == before
    with pytest.raises(UserError, match="different movies"):
        merge_identities(project, c["zed"], c["ann"], "boss")


def test_every_identities_command_has_help(capsys):
    for action in ("list", "rename", "merge"):
        with pytest.raises(SystemExit) as exc:
            main(["identities", action, "--help"])
        assert exc.value.code == 0
        assert "usage: portrait identities " + action in capsys.readouterr().out


def test_merge_from_another_queue_keeps_that_queues_leases(cast):
    """A reviewer working on the age queue merges two characters: the age crops leased to them stay theirs."""
    project, c = cast
    with AnnotationService(project, "rev", "age") as svc:
        svc.claim(64)
        held = svc.held_leases()
        assert c["c1"][3] in held  # one of Anne's crops (no age yet) is in the reviewer's age queue
        result = svc.merge_identities(c["ann"], c["anne"])
        assert result.moved == 2 and svc.held_leases() == held
