"""The identity view's proposal (one key confirms a whole candidate cluster, a click leaves a track out,
undo takes it all back) and the character-level age view, driven through the real widgets offscreen;
every test checks what the store holds."""

from __future__ import annotations

from PySide6.QtCore import Qt
from sqlalchemy import select

from annotator_gui.character_view import CharacterView
from portrait_builder.annotation import AnnotationService
from portrait_builder.store.models import Candidate, CurrentLabel, Identity, Label
from portrait_builder.testing.annotation_sample import crops_by_track, make_candidate

FIRST_MOVIE = 1  # the sample's first movie: every test's store is a new one


def current(project, crop_id, attribute):
    """(value, provenance) of a crop's current label, or None."""
    with project.session() as s:
        row = s.execute(select(CurrentLabel.value, Label.provenance).join(Label, Label.id == CurrentLabel.label_id)
                        .where(CurrentLabel.crop_id == crop_id, CurrentLabel.attribute == attribute)).first()  # fmt: skip
    return None if row is None or row.value is None else (row.value, row.provenance)


def test_identity_view_confirms_cluster_in_one_key_and_undoes_it(gui_project, open_window, qtbot):
    project, _ = gui_project
    tracks = crops_by_track(project, FIRST_MOVIE)
    t = sorted(tracks)
    cand = make_candidate(project, t[:3])
    w = open_window(project, "ann_id")
    view = w.view
    crop = view.item.id
    assert crop == tracks[t[0]][0]
    # the proposal: a new character from the cluster, its two other tracks as ticked toggles with their counts
    assert view.proposal.kind == "new" and "New character" in view.proposal_text.text()
    shown = [b for b in view.cluster_buttons if b.isVisibleTo(view)]
    assert len(shown) == 2 and all(b.isChecked() for b in shown)
    by_track = {tr.track_id: b for tr, b in zip(view.proposal.tracks, view.cluster_buttons, strict=False)}
    assert by_track[t[1]].text() == f"{len(tracks[t[1]])} crops"
    # a click leaves the wrong track out; Enter confirms, asks the new character's gender: F
    qtbot.mouseClick(by_track[t[2]], Qt.MouseButton.LeftButton)
    assert view.cluster_tracks() == [t[1]]
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert view.prompt.isVisibleTo(view)
    qtbot.keyClick(view, Qt.Key.Key_F)
    with project.session() as s:
        hero = s.scalar(select(Identity).where(Identity.exemplar_crop_id == crop))
        assert hero is not None and hero.gender == "female"
        cand_row = s.get(Candidate, cand)
        assert cand_row.identity_id == hero.id and cand_row.confirmed_by is not None
        hero_id = hero.id
    assert current(project, crop, "identity") == (str(hero_id), "clicked")
    labelled = tracks[t[0]][1:] + tracks[t[1]]
    for c in labelled:
        assert current(project, c, "identity") == (str(hero_id), "propagated")
        assert current(project, c, "gender") == ("female", "propagated")
    assert all(current(project, c, "identity") is None for c in tracks[t[2]])

    # the left-out track comes next: its proposal is the cluster's confirmed character; Space confirms it
    assert view.item.id == tracks[t[2]][0]
    assert view.proposal.kind == "confirmed" and view.proposal.identity_id == hero_id
    qtbot.keyClick(view, Qt.Key.Key_Space)
    assert all(current(project, c, "identity") == (str(hero_id), "clicked" if c == tracks[t[2]][0] else "propagated")
               for c in tracks[t[2]])  # fmt: skip

    # Ctrl+Z twice: the Space confirm, then the whole-cluster confirm, labels and candidate together
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert all(current(project, c, "identity") is None for c in tracks[t[2]])
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert all(current(project, c, "identity") is None for c in [crop, *labelled])
    with project.session() as s:
        assert s.get(Candidate, cand).identity_id is None and s.get(Candidate, cand).confirmed_at is None
    assert view.item.id == crop  # the undone crop is shown again
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert all(current(project, c, "identity") == (str(hero_id), "propagated") for c in labelled)
    with project.session() as s:
        assert s.get(Candidate, cand).identity_id == hero_id


def test_character_view_sets_age_on_the_character_or_the_track(gui_project, open_window, qtbot):
    project, _ = gui_project
    tracks = crops_by_track(project, FIRST_MOVIE)
    t = sorted(tracks)
    ident = AnnotationService(project, "ann_id")
    hero = ident.new_identity(tracks[t[0]][0], "male", name="Hero", also=tracks[t[0]][1:])
    ident.close()
    w = open_window(project, "ann_age")
    view = w.view
    assert isinstance(view, CharacterView)
    assert view.item.id == tracks[t[0]][0]
    assert "Hero" in view.character_text.text() and f"{len(tracks[t[0]])} crops" in view.character_text.text()
    assert view.character_image.pixmap() is not None and not view.character_image.pixmap().isNull()
    qtbot.keyClick(view, Qt.Key.Key_3)  # young adult, on the character
    with project.session() as s:
        assert s.get(Identity, hero.id).attributes == {"age": "young_adult"}
    assert all(current(project, c, "age") == ("young_adult", "inherited") for c in tracks[t[0]])

    # the next crop has no character: C then 5 labels that crop only; then 1 labels the rest of its track
    nxt = view.item.id
    assert nxt == tracks[t[1]][0] and "no character" in view.character_text.text()
    qtbot.keyClick(view, Qt.Key.Key_C)
    qtbot.keyClick(view, Qt.Key.Key_5)
    assert current(project, nxt, "age") == ("elderly", "clicked")
    assert all(current(project, c, "age") is None for c in tracks[t[1]][1:])
    assert not view.crop_only.isChecked()
    second = view.item.id
    assert second == tracks[t[1]][1]
    qtbot.mouseClick(view.value_buttons["child"], Qt.MouseButton.LeftButton)
    assert current(project, second, "age") == ("child", "clicked")
    assert all(current(project, c, "age") == ("child", "propagated") for c in tracks[t[1]][2:])
    assert current(project, nxt, "age") == ("elderly", "clicked")  # the hand-set crop stays

    # undo the character-level key too: the character's value and its crops' labels go back
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    with project.session() as s:
        assert not s.get(Identity, hero.id).attributes
    assert all(current(project, c, "age") is None for c in tracks[t[0]] + tracks[t[1]])
