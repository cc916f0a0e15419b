"""The count model, proven on the real widgets: the same annotator labels identity twice on two identical
films (candidate characters clustered, so the view proposes), once at service level (clicks counted by
the benchmark's model) and once by sending key presses and mouse clicks to the real IdentityView with
qtbot (clicks counted as they are sent). Both must cost the same number of clicks and leave the same
labels in the store.

Reference: the film's ground truth (portrait_builder/testing/effort.py) and each store's own current labels.
"""

from __future__ import annotations

from collections import defaultdict

from PySide6.QtCore import Qt
from sqlalchemy import select

from annotator_gui import views
from portrait_builder.annotation import AnnotationService
from portrait_builder.store import Crop, Label, current_labels

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
        shown = len(v.proposal.tracks[: views.CLUSTER_TRACKS]) if v.proposal is not None else 0
        cluster = [b.isChecked() for b in v.cluster_buttons[:shown]]
        return self.effort.IdentityScreen(v.item, list(v.exemplars), list(v.strip), ticked, v.whole_track.isChecked(),
                                          v.proposal, cluster)  # fmt: skip

    def toggle_cluster(self, index: int) -> None:
        self._click(self.view.cluster_buttons[index])

    def confirm(self) -> None:
        self._key(Qt.Key.Key_Return)

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


def same_labels(model_world, widget_world) -> dict:
    """The current labels the widgets left, checked equal to the ones the model's run left."""
    with model_world.project.session() as s:
        by_model = current_labels(s)
    with widget_world.project.session() as s:
        by_widgets = current_labels(s)
    assert by_widgets == by_model
    return by_widgets


def _tracker_errors(world, world_mod) -> tuple[int, int]:
    """Two tracker errors (the same in every build): a crop pushed into an earlier track of another person
    (the strip shows it there: one click leaves it out) and one pushed into a later track (it comes first in
    the queue with a strip of someone else: T off, decide, T on)."""
    # Moved crops show no face: a face would pull the whole track into the character's cluster, whose
    # proposal shows that track by one crop only (see docs/benchmarks.md, Labelling effort).
    tracks = sorted(world.tracks.values(), key=lambda t: t.track_id)

    def hidden(track):
        return [c for c in track.crop_ids if not world.face_visible[c]]

    late = next(t for t in reversed(tracks) if t.character is not None and hidden(t))
    early_dst = next(t for t in tracks if t.person != late.person and t.shot != late.shot)
    a = hidden(late)[0]
    world_mod.move_crop(world, a, early_dst.track_id)
    early = next(t for t in tracks if t.character is not None and hidden(t) and t.track_id != late.track_id)
    late_dst = next(t for t in reversed(tracks) if t.person != early.person and t.shot != early.shot)
    b = hidden(early)[0]
    assert early.track_id < late_dst.track_id and len(late_dst.crop_ids) > 2 and b != a
    world_mod.move_crop(world, b, late_dst.track_id)
    return a, b


def test_widgets_cost_what_the_model_counts(make_world, effort, world_mod, qtbot):
    from annotator_gui.app import AnnotationWindow

    assert (views.MAX_EXEMPLARS, views.STRIP_CROPS, views.CLUSTER_TRACKS) == (
        effort.MAX_EXEMPLARS, effort.STRIP_CROPS, effort.CLUSTER_TRACKS)
    # two characters who come back in three shots, a background person in each shot
    spec = world_mod.EffortSpec(characters=2, shots=3, shots_per_scene=3, shot_crops=(8, 10),
                                background_per_shot=(1, 1), seed=8)  # fmt: skip
    model_world, widget_world = make_world(spec, "model"), make_world(spec, "widgets")
    assert _tracker_errors(model_world, world_mod) == _tracker_errors(widget_world, world_mod)
    # the candidate characters (what `portrait characters` computes) for the proposal, the same in both
    clusters = [effort.cluster_characters(w) for w in (model_world, widget_world)]
    assert clusters[0]["candidates"] == clusters[1]["candidates"] < len(model_world.tracks)

    tally = effort.Tally()
    with AnnotationService(model_world.project, "sim_identity") as service:
        effort.label_identity(effort.ServiceIdentityUI(service, tally, proposals=True), model_world, tally)

    window = AnnotationWindow(AnnotationService(widget_world.project, "sim_identity"))
    qtbot.addWidget(window)
    window.show()
    hands = WidgetIdentityUI(effort, window, qtbot)
    widget_tally = effort.Tally()
    effort.label_identity(hands, widget_world, widget_tally)
    window.close()

    # both paths took real corrections (a strip crop left out, T off / on around a lone crop), and one
    # decision labelled several tracks (a whole cluster)
    assert tally.actions["identity", "strip_toggle"] >= 1 and tally.actions["identity", "whole_track"] == 2
    with widget_world.project.session() as s:
        rows = s.execute(select(Label.created_at, Crop.track_id).join(Crop, Crop.id == Label.crop_id)
                         .where(Label.attribute == "identity")).all()  # fmt: skip
    tracks_per_action = defaultdict(set)
    for stamp, track in rows:
        tracks_per_action[stamp].add(track)
    assert max(len(t) for t in tracks_per_action.values()) >= 2
    assert hands.sent == tally.clicks["identity"]
    assert widget_tally.decisions == tally.decisions
    assert len(same_labels(model_world, widget_world)) == len(model_world.truth)
    _, per = effort.accuracy(widget_world)
    assert per["identity"] == per["gender"] == 1.0


class WidgetTrackUI:
    """The annotator's hands on the real posture / expression view (AttributeView with its track strip)."""

    def __init__(self, effort, window, qtbot):
        self.effort, self.view, self.qtbot = effort, window.view, qtbot
        self.attribute = self.view.attribute
        self.sent = 0

    def _key(self, key) -> None:
        self.qtbot.keyClick(self.view, key)
        self.sent += 1

    def current(self):
        return self.view.item

    def track_id(self) -> int:
        return self.view.item.track_id

    def change_points(self) -> tuple[int, ...]:
        return self.view.context.change_points

    def show(self, crop_id: int, order: list[int]) -> None:
        strip = [c.id for c in self.view.context.strip]
        clicks, click, steps = self.effort.show_plan(strip, order, self.view.item.id, crop_id)
        before = self.sent
        if click is not None:
            self.qtbot.mouseClick(self.view.strip_buttons[strip.index(click)], Qt.MouseButton.LeftButton)
            self.sent += 1
        for _ in range(abs(steps)):
            self._key("." if steps > 0 else ",")
        assert self.view.item.id == crop_id and self.sent - before == clicks

    def mark_change(self) -> None:
        self._key("s")

    def label(self, value) -> None:
        hotkey = {v.name: v.hotkey for v in self.attribute.values}
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not self.attribute.multilabel or values == ["unsure"]:
            self._key(hotkey[values[0]])
            return
        for v in values:
            self._key(hotkey[v])
        self._key(Qt.Key.Key_Return)

    def faceless(self) -> None:
        self._key("f")


def test_track_view_costs_what_the_model_counts(make_world, tiny_spec, effort, world_mod, qtbot):
    """Posture and expression along tracks: change points, steps through the strip, F for faces turned away."""
    from annotator_gui.app import AnnotationWindow

    assert views.ATTRIBUTE_STRIP == effort.ATTRIBUTE_STRIP
    spec = world_mod.EffortSpec(characters=2, shots=2, shots_per_scene=1, shot_crops=(30, 34),
                                background_per_shot=(1, 1), seed=5)  # fmt: skip
    model_world, widget_world = make_world(spec, "model"), make_world(spec, "widgets")
    for attr in ("body_posture", "expression"):
        tally = effort.Tally()
        with AnnotationService(model_world.project, f"sim_{attr}") as service:
            effort.label_dynamic(effort.ServiceTrackUI(service, tally), model_world, attr, tally)
        window = AnnotationWindow(AnnotationService(widget_world.project, f"sim_{attr}"))
        qtbot.addWidget(window)
        window.show()
        hands = WidgetTrackUI(effort, window, qtbot)
        widget_tally = effort.Tally()
        effort.label_dynamic(hands, widget_world, attr, widget_tally)
        window.close()
        # change points were marked, with crops of the track shown for them (tracks longer than the strip)
        assert tally.actions[attr, "change_point"] >= 1 and tally.actions[attr, "navigate"] >= 1
        assert hands.sent == tally.clicks[attr], attr
        assert widget_tally.decisions == tally.decisions
    same_labels(model_world, widget_world)
    _, per = effort.accuracy(widget_world)
    assert per["body_posture"] == per["expression"] == 1.0


def test_character_view_costs_what_the_model_counts(make_world, tiny_spec, effort, qtbot):
    """Age once per character (and per track without one): the value key in the real CharacterView."""
    from annotator_gui.app import AnnotationWindow

    model_world, widget_world = make_world(tiny_spec, "model"), make_world(tiny_spec, "widgets")
    for world in (model_world, widget_world):  # identity first: the characters the age view labels
        tally = effort.Tally()
        with AnnotationService(world.project, "sim_identity") as service:
            effort.label_identity(effort.ServiceIdentityUI(service, tally), world, tally)
    tally = effort.Tally()
    with AnnotationService(model_world.project, "sim_age") as service:
        effort.label_attribute(effort.ServiceCharacterUI(service, tally), model_world, "age", tally)

    window = AnnotationWindow(AnnotationService(widget_world.project, "sim_age"))
    qtbot.addWidget(window)
    window.show()
    view, sent = window.view, 0
    hotkey = {v.name: v.hotkey for v in view.attribute.values}
    while view.item is not None:
        qtbot.keyClick(view, hotkey[widget_world.truth[view.item.id]["age"]])
        sent += 1
    window.close()
    people = {t.person for t in model_world.tracks.values()}
    assert sent == tally.clicks["age"] == len(people)  # one key per character and per background track
    same_labels(model_world, widget_world)
    _, per = effort.accuracy(widget_world)
    assert per["age"] == 1.0
