"""The count model, proven on the real widgets: the same annotator labels identity twice on two identical
films, once at service level (clicks counted by the benchmark's model) and once by sending key presses and
mouse clicks to the real IdentityView with qtbot (clicks counted as they are sent). Both must cost the same
number of clicks and leave the same labels in the store.

Reference: the film's ground truth (portrait_builder/testing/effort.py) and each store's own current labels.
"""

from __future__ import annotations

from PySide6.QtCore import Qt

from annotator_gui import views
from portrait_builder.annotation import AnnotationService
from portrait_builder.store import current_labels

GENDER_KEYS = {"male": Qt.Key.Key_M, "female": Qt.Key.Key_F, "unsure": Qt.Key.Key_0}


class WidgetIdentityUI:
    """The annotator's hands on the real identity view: every action is a qtbot key press or click."""

    def __init__(self, effort, window, qtbot):
        self.effort, self.view, self.qtbot = effort, window.view, qtbot
        self.sent = 0

    def screen(self):
        v = self.view
        if v.item is None:
            return None
        ticked = [b.isChecked() for b in v.strip_buttons[: len(v.strip)]]
        return self.effort.IdentityScreen(v.item, list(v.exemplars), list(v.strip), ticked, v.whole_track.isChecked())

    def _key(self, key) -> None:
        self.qtbot.keyClick(self.view, key)
        self.sent += 1

    def _click(self, widget) -> None:
        self.qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)
        self.sent += 1

    def toggle_strip(self, index: int) -> None:
        self._click(self.view.strip_buttons[index])

    def pick(self, index: int) -> None:
        if index < 9:
            self._key(Qt.Key(Qt.Key.Key_1.value + index))
        else:
            self._click(self.view.exemplar_buttons[index])

    def new_identity(self, gender: str) -> None:
        self._key(Qt.Key.Key_N)
        self._key(GENDER_KEYS[gender])

    def unknown_person(self, gender: str) -> None:
        self._key(Qt.Key.Key_U)
        self._key(GENDER_KEYS[gender])

    def not_visible(self) -> None:
        self._key(Qt.Key.Key_0)

    def set_whole_track(self, on: bool) -> None:
        if self.view.whole_track.isChecked() != on:
            self._key(Qt.Key.Key_T)


def _tracker_errors(world, world_mod) -> tuple[int, int]:
    """Two tracker errors (the same in every build): a crop pushed into an earlier track of another person
    (the strip shows it there: one click leaves it out) and one pushed into a later track (it comes first in
    the queue with a strip of someone else: T off, decide, T on)."""
    tracks = sorted(world.tracks.values(), key=lambda t: t.track_id)
    late = next(t for t in reversed(tracks) if t.character is not None)
    early_dst = next(t for t in tracks if t.person != late.person and t.shot != late.shot)
    a = late.crop_ids[len(late.crop_ids) // 2]
    world_mod.move_crop(world, a, early_dst.track_id)
    early = next(t for t in tracks if t.character is not None)
    late_dst = next(t for t in reversed(tracks) if t.person != early.person and t.shot != early.shot)
    b = early.crop_ids[len(early.crop_ids) // 2]
    assert early.track_id < late_dst.track_id and len(late_dst.crop_ids) > 2 and b != a
    world_mod.move_crop(world, b, late_dst.track_id)
    return a, b


def test_widgets_cost_what_the_model_counts(make_world, tiny_spec, effort, world_mod, qtbot):
    from annotator_gui.app import AnnotationWindow

    assert (views.MAX_EXEMPLARS, views.STRIP_CROPS) == (effort.MAX_EXEMPLARS, effort.STRIP_CROPS)
    model_world, widget_world = make_world(tiny_spec, "model"), make_world(tiny_spec, "widgets")
    assert _tracker_errors(model_world, world_mod) == _tracker_errors(widget_world, world_mod)

    tally = effort.Tally()
    with AnnotationService(model_world.project, "sim_identity") as service:
        effort.label_identity(effort.ServiceIdentityUI(service, tally), model_world, tally)

    window = AnnotationWindow(AnnotationService(widget_world.project, "sim_identity"))
    qtbot.addWidget(window)
    window.show()
    hands = WidgetIdentityUI(effort, window, qtbot)
    widget_tally = effort.Tally()
    effort.label_identity(hands, widget_world, widget_tally)
    window.close()

    # both paths took real corrections: a strip crop left out, and T off / on around a lone crop
    assert tally.actions["identity", "strip_toggle"] >= 1 and tally.actions["identity", "whole_track"] == 2
    assert hands.sent == tally.clicks["identity"]
    assert widget_tally.decisions == tally.decisions
    with model_world.project.session() as s:
        by_model = current_labels(s)
    with widget_world.project.session() as s:
        by_widgets = current_labels(s)
    assert by_widgets == by_model and len(by_model) == len(model_world.truth)
    _, per = effort.accuracy(widget_world)
    assert per["identity"] == per["gender"] == 1.0
