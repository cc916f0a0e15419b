"""The attribute views over tracks, driven through the real widgets offscreen (real MOT17 person crops):
a key labels the crop and the rest of its track up to the change point S marked, the prediction is shown
selected and Enter accepts it, F sends faceless crops to unsure, and Ctrl+Z takes each back; every test
checks what the store holds."""

from __future__ import annotations

from PySide6.QtCore import Qt
from sqlalchemy import select, update

from annotator_gui.views import PREDICTED_STYLE, AttributeView
from portrait_builder.annotation import add_annotator
from portrait_builder.store.models import ChangePoint, Crop, CurrentLabel, Label
from portrait_builder.store.predictions import store_predictions

BODY = "body_posture"
CTRL = Qt.KeyboardModifier.ControlModifier


def track_of(project, crop_id) -> list[int]:
    with project.session() as s:
        track = s.get(Crop, crop_id).track_id
        return list(s.scalars(select(Crop.id).where(Crop.track_id == track).order_by(Crop.frame_index)))


def current(project, crop_id, attribute=BODY):
    with project.session() as s:
        row = s.execute(select(CurrentLabel.value, Label.provenance).join(Label, Label.id == CurrentLabel.label_id)
                        .where(CurrentLabel.crop_id == crop_id, CurrentLabel.attribute == attribute)).first()  # fmt: skip
    return None if row is None or row.value is None else (row.value, row.provenance)


def change_points(project) -> list[int]:
    with project.session() as s:
        return list(s.scalars(select(ChangePoint.frame_index).order_by(ChangePoint.frame_index)))


def test_track_label_change_point_and_undo_through_the_keys(gui_project, open_window, qtbot):
    project, _ = gui_project
    add_annotator(project, "ann_body", "annotator", BODY)
    w = open_window(project, "ann_body")
    view = w.view
    assert isinstance(view, AttributeView)
    track = track_of(project, view.item.id)
    assert view.item.id == track[0] and len(track) >= 4
    strip = [b for b in view.strip_buttons if b.isVisibleTo(view)]
    assert len(strip) == min(len(track), 24) and "3px solid #fc3" in strip[0].styleSheet()  # the crop shown
    # step to the third crop of the track, mark a change point there, step back, label: stops at it
    qtbot.keyClick(view, Qt.Key.Key_Period)
    qtbot.keyClick(view, Qt.Key.Key_Period)
    assert view.item.id == track[2]
    qtbot.keyClick(view, Qt.Key.Key_S)
    with project.session() as s:
        assert change_points(project) == [s.get(Crop, track[2]).frame_index]
    assert "#f80" in view.strip_buttons[2].styleSheet()
    qtbot.keyClick(view, Qt.Key.Key_Comma)
    qtbot.keyClick(view, Qt.Key.Key_Comma)
    assert view.item.id == track[0]
    qtbot.keyClick(view, Qt.Key.Key_1)  # standing
    assert current(project, track[0]) == ("standing", "clicked")
    assert current(project, track[1]) == ("standing", "propagated")
    assert all(current(project, c) is None for c in track[2:])
    # the queue goes on with the first unlabelled crop: the change point's; 4 (sitting) labels the rest
    assert view.item.id == track[2]
    qtbot.keyClick(view, Qt.Key.Key_4)
    assert current(project, track[2]) == ("sitting", "clicked")
    assert all(current(project, c) == ("sitting", "propagated") for c in track[3:])
    assert view.item.id not in track

    # Ctrl+Z: the second segment, the first, then the change point, one key each
    qtbot.keyClick(view, Qt.Key.Key_Z, CTRL)
    assert all(current(project, c) is None for c in track[2:]) and current(project, track[0]) is not None
    assert view.item.id == track[2]
    qtbot.keyClick(view, Qt.Key.Key_Z, CTRL)
    assert all(current(project, c) is None for c in track)
    assert len(change_points(project)) == 1
    qtbot.keyClick(view, Qt.Key.Key_Z, CTRL)
    assert change_points(project) == []
    # T: the next key labels the crop shown only
    qtbot.keyClick(view, Qt.Key.Key_T)
    shown = view.item.id
    qtbot.keyClick(view, Qt.Key.Key_2)
    assert current(project, shown) == ("walking", "clicked")
    assert sum(current(project, c) is not None for c in track_of(project, shown)) == 1


def test_prediction_selected_enter_accepts_and_faceless_to_unsure(gui_project, open_window, qtbot):
    project, ids = gui_project
    add_annotator(project, "ann_body", "annotator", BODY)
    first = track_of(project, ids[0])
    project.run_write(lambda s: store_predictions(s, [(first[0], BODY, "walking", 0.83),
                                                      (first[0], "expression", "happiness|surprise", 0.6)], "sha"))
    w = open_window(project, "ann_body")
    view = w.view
    assert view.item.id == first[0]
    assert "Walking" in view.prediction_label.text() and "83%" in view.prediction_label.text()
    assert view.value_buttons["walking"].styleSheet() == PREDICTED_STYLE and view.accept_button.isEnabled()
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert current(project, first[0]) == ("walking", "accepted")
    assert all(current(project, c) == ("walking", "propagated") for c in first[1:])
    assert view.prediction_label.text() == ""  # the next crop has no prediction
    qtbot.keyClick(view, Qt.Key.Key_Z, CTRL)
    assert all(current(project, c) is None for c in first)

    # expression: the prediction's values come pre-toggled; F sends the faceless crops to unsure
    faceless = first[1::2]
    project.run_write(lambda s: s.execute(update(Crop).where(Crop.id.in_(faceless)).values(face_visible=False)))
    w2 = open_window(project, "ann_expr")
    expr = w2.view
    assert expr.item.id == first[0]
    assert expr.checked() == ["happiness", "surprise"]
    qtbot.keyClick(expr, Qt.Key.Key_F)
    assert all(current(project, c, "expression") == ("unsure", "propagated") for c in faceless)
    assert current(project, first[0], "expression") is None and expr.item.id == first[0]  # not faceless: stays
    # the prediction as shown: Enter accepts it; untoggling one makes it a click
    qtbot.keyClick(expr, Qt.Key.Key_Return)
    assert current(project, first[0], "expression") == ("happiness|surprise", "accepted")
    assert current(project, first[2], "expression") == ("happiness|surprise", "propagated")
    assert all(current(project, c, "expression") == ("unsure", "propagated") for c in faceless)  # no face: stays
    qtbot.keyClick(expr, Qt.Key.Key_Z, CTRL)
    qtbot.keyClick(expr, Qt.Key.Key_6)  # untoggle surprise
    qtbot.keyClick(expr, Qt.Key.Key_Return)
    assert current(project, first[0], "expression") == ("happiness", "clicked")
