"""Labelling effort: crops labelled per key press or click, a simulated annotator on a synthetic film.

A synthetic film project with ground truth (portrait_builder/testing/effort.py: characters across shots,
outfit changes, static attributes per character, posture and expression changing inside tracks,
faces turned away, background people) is labelled through the real
:class:`portrait_builder.annotation.AnnotationService`, one annotator per attribute as the app
enforces. The annotator knows the truth but sees only what the view shows (the current crop, the
exemplar grid, the track strip) and corrects every wrong suggestion it sees. Every action is
counted as the key presses and clicks the real widgets need (annotator_gui/views.py):

==========================================  ==========================================  =====
what the annotator does                     service call                                count
==========================================  ==========================================  =====
identity: pick a shown character            assign_identity(current + ticked strip)       1  (key 1-9; a click from the 10th on)
identity: new character                     new_identity(current, gender, also=strip)     2  (N, then M / F)
identity: unknown person                    unknown_person(current + strip, gender)       2  (U, then M / F / 0)
identity: leave a strip crop out / put in   (changes the targets of the next call)        1  (click on the strip crop)
identity: whole track off / on              (targets: the current crop only / + strip)    1  (T)
identity: confirm the proposal              confirm_proposal(current, strip, tracks)      1  (Enter; a new character: + M / F)
identity: leave a cluster track out         (changes the tracks of the next confirm)      1  (click on the track)
age / physique / height, per character      label_character_or_track(current, value)      1  (the value's key)
single-value attribute, one crop            set_label(current, value)                     1  (the value's key)
posture / expression, to the change point   label_track(shown, value)                     1  (the value's key)
posture / expression: show a track crop     (the crop shown changes)                      1 + n (a strip click, n steps . / ,)
posture / expression: mark a change point   toggle_change_point(shown)                    1  (S)
expression: faces turned away to unsure     label_faceless(shown)                         1  (F)
expression, one or more expressions         set_label / label_track(.., [values])         n+1 (n toggles, Enter)
expression, not visible / unsure            set_label / label_track(.., "unsure")         1  (0)
==========================================  ==========================================  =====

Gender is written by the identity annotator with each identity decision (the paper: a property of
the identity); it costs no click of its own and counts in the overall figure with zero clicks.
``crops per click`` of an attribute = crops given that attribute / clicks spent on it; overall =
crop-attribute labels / all clicks. The paper's baseline (one decision per crop per attribute:
identity by exemplar, the Fig. 8 view without whole-track labelling) runs in the same process on a
second, identical build of the film. The count model is proven against the real widgets in
tests/effort/test_effort_widgets.py (qtbot sends the same decisions as key presses and clicks to the
identity view, the character-level view and the posture / expression view).

The development clip (../shared/data/movie/tears_of_steel) is ingested with the defaults into a
temporary project; its crops get ground-truth ids by IoU >= 0.4 against the hand boxes on labelled
frames (boxes linearly interpolated between labelled frames of one shot for the crops in between),
and the identity annotator labels it the same way.

    python benchmarks/annotation_effort.py [--shots 45] [--seed 0] [--no-film] [--json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import logging
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment
from sqlalchemy import select

from portrait_builder.annotation import AnnotationService, CropItem, Exemplar, TrackCrop, add_annotator
from portrait_builder.store import Crop, Identity, Project, current_labels
from portrait_builder.testing.effort import DYNAMIC, STATIC, UNKNOWN, UNSURE, EffortSpec, EffortWorld, build_world

log = logging.getLogger("annotation_effort")

ATTRIBUTES = ("identity", *STATIC, *DYNAMIC)
GENDER_SET_WITH_IDENTITY = "gender"
MAX_EXEMPLARS = 48  # what the identity view asks for (annotator_gui.views.MAX_EXEMPLARS)
STRIP_CROPS = 16  # the track strip's length (annotator_gui.views.STRIP_CROPS)
CLUSTER_TRACKS = 24  # cluster tracks the proposal shows as toggles (annotator_gui.views.CLUSTER_TRACKS)
ATTRIBUTE_STRIP = 24  # crops the attribute view's track strip shows (annotator_gui.views.ATTRIBUTE_STRIP)
HOTKEY_EXEMPLARS = 9  # keys 1-9 pick the first nine exemplars; the rest need a click
# The baseline costs one service call per crop and attribute (about 30 ms each on a busy 2-core box):
# it labels its own smaller film of the same generator; its crops per click does not depend on size.
BASELINE_SHOTS = 8


# -- counting ------------------------------------------------------------------------------------
@dataclass
class Tally:
    """Clicks (key presses and mouse clicks) per attribute queue, and decisions taken."""

    clicks: Counter = field(default_factory=Counter)
    decisions: Counter = field(default_factory=Counter)
    actions: Counter = field(default_factory=Counter)  # (attribute, action) -> times, e.g. a strip crop left out

    def add(self, attribute: str, clicks: int, action: str = "decide") -> None:
        self.clicks[attribute] += clicks
        self.actions[attribute, action] += 1


# -- what a view shows, and the actions on it ----------------------------------------------------
@dataclass(frozen=True)
class IdentityScreen:
    """The identity view's content: current crop, exemplar grid, track strip with its tick states."""

    item: CropItem
    exemplars: list[Exemplar]
    strip: list[TrackCrop]
    ticked: list[bool]
    whole_track: bool  # the "Label whole track (T)" box: the ticked strip crops are labelled with the current one
    proposal: object | None = None  # the view's Proposal (most likely character, the cluster's other tracks)
    cluster_ticked: list[bool] = field(default_factory=list)  # the shown cluster tracks still ticked

    @property
    def cluster(self) -> list:
        return list(self.proposal.tracks[: len(self.cluster_ticked)]) if self.proposal is not None else []


class IdentityUI(Protocol):
    """The identity view as the annotator meets it: the service-level model or the real widget."""

    def screen(self) -> IdentityScreen | None: ...
    def toggle_strip(self, index: int) -> None: ...
    def pick(self, index: int) -> None: ...
    def new_identity(self, gender: str) -> None: ...
    def unknown_person(self, gender: str) -> None: ...
    def not_visible(self) -> None: ...
    def set_whole_track(self, on: bool) -> None: ...
    def toggle_cluster(self, index: int) -> None: ...
    def confirm(self) -> None: ...


class ServiceIdentityUI:
    """The identity view at service level: the same reads and writes as IdentityView, clicks counted by the model.

    ``proposals``: the view with the proposal (the crop's candidate cluster and its likely character; Enter
    confirms, a digit or N confirms another character for the cluster); without it, the view before
    proposals (exemplars and the track strip only).
    """

    def __init__(self, service: AnnotationService, tally: Tally, *, whole_track: bool = True, proposals: bool = False):
        self.service, self.tally, self.whole_track, self.proposals = service, tally, whole_track, proposals
        self._screen: IdentityScreen | None = None
        if not whole_track:
            tally.add("identity", 1, "whole_track")  # T, once
        self._advance()

    def set_whole_track(self, on: bool) -> None:
        if on != self.whole_track:
            self.tally.add("identity", 1, "whole_track")  # T
            self.whole_track = on
            if self._screen is not None:
                self._screen = replace(self._screen, whole_track=on)

    def _advance(self) -> None:
        item = self.service.next_item()
        if item is None:
            self._screen = None
            return
        proposal = None
        if self.proposals:
            ctx = self.service.identity_view_context(item.id, exemplars=MAX_EXEMPLARS, strip=STRIP_CROPS)
            exemplars, strip, proposal = ctx.exemplars, ctx.strip, ctx.proposal
        else:
            exemplars, strip = self.service.identity_context(item.id, exemplars=MAX_EXEMPLARS, strip=STRIP_CROPS)
        cluster = [True] * min(len(proposal.tracks), CLUSTER_TRACKS) if proposal is not None else []
        self._screen = IdentityScreen(item, exemplars, strip, [not tc.labelled for tc in strip], self.whole_track,
                                      proposal, cluster)  # fmt: skip

    def screen(self) -> IdentityScreen | None:
        return self._screen

    def _targets(self) -> list[int]:
        sc = self._screen
        ids = [sc.item.id]
        if self.whole_track:
            ids += [tc.id for tc, on in zip(sc.strip, sc.ticked, strict=True) if on]
        return ids

    def toggle_strip(self, index: int) -> None:
        self.tally.add("identity", 1, "strip_toggle")
        self._screen.ticked[index] = not self._screen.ticked[index]

    def toggle_cluster(self, index: int) -> None:
        self.tally.add("identity", 1, "cluster_toggle")
        self._screen.cluster_ticked[index] = not self._screen.cluster_ticked[index]

    def _in_cluster(self) -> bool:
        return self._screen.proposal is not None and self._screen.proposal.candidate_id is not None

    def _confirm(self, identity_id: int | None, gender: str | None = None) -> None:
        sc, targets = self._screen, self._targets()
        tracks = [t.track_id for t, on in zip(sc.cluster, sc.cluster_ticked, strict=True) if on]
        # as the identity view does: in whole-track mode the track's crops beyond the strip go too,
        # never a strip crop left unticked
        left_out = [tc.id for tc, on in zip(sc.strip, sc.ticked, strict=True) if not on]
        self.service.confirm_proposal(targets[0], identity_id, gender=gender, crops=targets[1:], tracks=tracks,
                                      whole_track=self.whole_track, exclude=left_out)
        self._advance()

    def confirm(self) -> None:
        """Enter: the proposed character (a new one: then its gender key, see new_identity)."""
        self.tally.add("identity", 1, "confirm")
        self._confirm(self._screen.proposal.identity_id)

    def pick(self, index: int) -> None:
        self.tally.add("identity", 1, "pick")
        identity_id = self._screen.exemplars[index].identity_id
        if self._in_cluster():  # the view confirms the picked character for the cluster's ticked tracks too
            self._confirm(identity_id)
            return
        self.service.assign_identity(self._targets(), identity_id)
        self._advance()

    def new_identity(self, gender: str) -> None:
        self.tally.add("identity", 2, "new")
        if self._in_cluster():
            self._confirm(None, gender)
            return
        targets = self._targets()
        self.service.new_identity(targets[0], gender, also=targets[1:])
        self._advance()

    def unknown_person(self, gender: str) -> None:
        self.tally.add("identity", 2, "unknown")
        self.service.unknown_person(self._targets(), gender)
        self._advance()

    def not_visible(self) -> None:
        self.tally.add("identity", 1, "not_visible")
        self.service.set_label(self._targets(), "identity", UNSURE)
        self._advance()


class AttributeUI(Protocol):
    def current(self) -> CropItem | None: ...
    def choose(self, value) -> None: ...


class ServiceAttributeUI:
    """One crop per screen, one value per decision (AttributeView), at service level."""

    def __init__(self, service: AnnotationService, tally: Tally):
        self.service, self.tally = service, tally
        self.attribute = service.taxonomy.attribute(service.attribute)
        self._item = service.next_item()

    def current(self) -> CropItem | None:
        return self._item

    def choose(self, value) -> None:
        self.tally.add(self.attribute.name, value_keys(self.attribute.multilabel, value))
        self.service.set_label([self._item.id], self.attribute.name, value)
        self._item = self.service.next_item()


class ServiceCharacterUI:
    """The age / physique / height view (annotator_gui/character_view.py) at service level: one value key
    sets the value on the crop's character (inherited by all its crops), or on its track without one."""

    def __init__(self, service: AnnotationService, tally: Tally):
        self.service, self.tally = service, tally
        self.attribute = service.attribute
        self._item = service.next_item()

    def current(self) -> CropItem | None:
        return self._item

    def choose(self, value) -> None:
        self.tally.add(self.attribute, 1)
        self.service.label_character_or_track(self._item.id, value, self.attribute)
        self._item = self.service.next_item()


def show_plan(strip_ids: list[int], order: list[int], shown: int, target: int) -> tuple[int, int | None, int]:
    """The cheapest way to show ``target`` of the track while ``shown`` is on screen: (clicks, strip crop to
    click or None, steps with "." (+) or "," (-) after it). ``order``: the track's crop ids by frame."""
    i = order.index(target)
    best = (abs(i - order.index(shown)), None, i - order.index(shown))
    for q in strip_ids:
        if q != shown and q in order and 1 + abs(i - order.index(q)) < best[0]:
            best = (1 + abs(i - order.index(q)), q, i - order.index(q))
    return best


class ServiceTrackUI:
    """The posture / expression view (track strip, change points) at service level, clicks counted as the
    AttributeView needs them: a value key labels the crop shown and the rest of its track up to the next
    change point (``label_track``); S marks a change point at the crop shown; F sends the track's crops
    without a visible face to "unsure"; another crop of the track is shown by a click on it in the strip,
    or on a strip crop near it and "." / "," steps (:func:`show_plan`)."""

    def __init__(self, service: AnnotationService, tally: Tally):
        self.service, self.tally = service, tally
        self.attribute = service.taxonomy.attribute(service.attribute)
        self._item = service.next_item()
        self._shown = self._item.id if self._item is not None else None

    def current(self) -> CropItem | None:
        return self._item

    def track_id(self) -> int:
        return self._item.track_id

    def change_points(self) -> tuple[int, ...]:
        return self.service.track_context(self._item.id, strip=ATTRIBUTE_STRIP).change_points

    def show(self, crop_id: int, order: list[int]) -> None:
        strip = [c.id for c in self.service.track_context(self._shown, strip=ATTRIBUTE_STRIP).strip]
        clicks, _, _ = show_plan(strip, order, self._shown, crop_id)
        self.tally.add(self.attribute.name, clicks, "navigate")
        self._shown = crop_id

    def mark_change(self) -> None:
        self.tally.add(self.attribute.name, 1, "change_point")
        self.service.toggle_change_point(self._shown)

    def _next(self) -> None:
        self._item = self.service.next_item()
        self._shown = self._item.id if self._item is not None else None

    def label(self, value) -> None:
        self.tally.add(self.attribute.name, value_keys(self.attribute.multilabel, value))
        self.service.label_track(self._shown, value)
        self._next()

    def faceless(self) -> None:
        self.tally.add(self.attribute.name, 1, "faceless")
        self.service.label_faceless(self._shown)
        self._next()


def track_order(project: Project, track_id: int) -> tuple[list[int], dict[int, int]]:
    """The track's crop ids by frame (what stepping through it visits) and each one's frame."""
    with project.session() as s:
        rows = s.execute(select(Crop.id, Crop.frame_index).where(Crop.track_id == track_id)
                         .order_by(Crop.frame_index)).all()  # fmt: skip
    return [r[0] for r in rows], {r[0]: r[1] for r in rows}


def label_dynamic(ui, world: EffortWorld, attribute: str, tally: Tally) -> None:
    """Work a posture / expression queue track by track: at the first unlabelled crop, mark the change points
    still missing in the rest of the track (show the crop, S), come back, then one value key per segment (the
    queue shows each segment's first crop in turn). Expression: values skip faces turned away; the first such
    crop the queue shows gets F (the whole track's to "unsure")."""
    expression = world.project.taxonomy.attribute(attribute).multilabel
    while (item := ui.current()) is not None:
        tally.decisions[attribute] += 1
        if expression and not world.face_visible[item.id]:
            ui.faceless()
            continue
        order, frame = track_order(world.project, ui.track_id())
        rest = order[order.index(item.id):]
        counted = [c for c in rest if not expression or world.face_visible[c]]
        wanted = [b for a, b in zip(counted, counted[1:], strict=False)
                  if world.truth[a][attribute] != world.truth[b][attribute]]  # fmt: skip
        points = set(ui.change_points())
        missing = [c for c in wanted if frame[c] not in points]
        for c in missing:
            ui.show(c, order)
            ui.mark_change()
        if missing:
            ui.show(item.id, order)
        ui.label(world.truth[item.id][attribute])


def value_keys(multilabel: bool, value) -> int:
    """Keys for one value in an attribute view: its key; for expressions each toggle plus Enter, 0 alone."""
    if not multilabel:
        return 1
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return 1 if values == [UNSURE] else len(values) + 1


# -- the annotator -------------------------------------------------------------------------------
def _identity_truth(world: EffortWorld, crop_id: int) -> str:
    return world.truth[crop_id]["identity"]


def _shown_as(world: EffortWorld, project: Project, value: str | None) -> str | None:
    """What a stored identity value means to someone who knows the film: char:<k>, unknown, unsure or None."""
    if value is None or not value.isdigit():
        return value
    with project.session() as s:
        exemplar = s.get(Identity, int(value)).exemplar_crop_id
    return _identity_truth(world, exemplar) if exemplar is not None else None


def label_identity(ui: IdentityUI, world: EffortWorld, tally: Tally, *, check_strip: bool = True) -> None:
    """Work the identity queue: tick exactly the strip crops of this person that lack a right label, then decide.

    ``check_strip=False``: an annotator who trusts the strip as shown (to prove that scoring catches it).
    """
    project = world.project
    while (sc := ui.screen()) is not None:
        person = _identity_truth(world, sc.item.id)
        want = [
            _identity_truth(world, tc.id) == person
            and (not tc.labelled or _shown_as(world, project, tc.identity) != person)
            for tc in sc.strip
        ]
        check = check_strip and sc.whole_track
        flips = [i for i, (w, t) in enumerate(zip(want, sc.ticked, strict=True)) if w != t] if check else []
        alone = len(flips) > 2 and not any(want)  # cheaper: T off, label this crop alone, T on again
        if alone:
            ui.set_whole_track(False)
        else:
            for i in flips:
                ui.toggle_strip(i)
        # the cluster's other tracks, each seen through its representative crop: leave out other people's
        for i, (track, on) in enumerate(zip(sc.cluster, sc.cluster_ticked, strict=True)):
            if on != (_identity_truth(world, track.crop_id) == person) and person not in (UNKNOWN, UNSURE):
                ui.toggle_cluster(i)
        tally.decisions["identity"] += 1
        _decide_identity(ui, world, sc, person)
        if alone:
            ui.set_whole_track(True)


def _decide_identity(ui: IdentityUI, world: EffortWorld, sc: IdentityScreen, person: str) -> None:
    if person == UNSURE:
        ui.not_visible()
    elif person == UNKNOWN:
        ui.unknown_person(world.truth[sc.item.id]["gender"])
    else:
        shown = [world.truth[ex.exemplar_crop_id]["identity"] if ex.exemplar_crop_id else None for ex in sc.exemplars]
        proposed = sc.proposal.exemplar_crop_id if sc.proposal is not None else None
        if proposed is not None and world.truth[proposed]["identity"] == person:
            ui.confirm()
        elif person in shown:
            ui.pick(shown.index(person))
        else:
            ui.new_identity(world.truth[sc.item.id]["gender"])


def label_attribute(ui: AttributeUI, world: EffortWorld, attribute: str, tally: Tally) -> None:
    """Work an attribute queue one crop at a time (the paper's workflow and today's attribute views)."""
    while (item := ui.current()) is not None:
        tally.decisions[attribute] += 1
        ui.choose(world.truth[item.id][attribute])


# -- scoring -------------------------------------------------------------------------------------
def accuracy(world: EffortWorld) -> tuple[float, dict[str, float]]:
    """Share of (crop, attribute) pairs whose current label equals the truth; identity by the exemplar's person."""
    project = world.project
    with project.session() as s:
        labels = current_labels(s, world.crop_ids)
        exemplar_of = {i.id: i.exemplar_crop_id for i in s.query(Identity).filter(Identity.video_id == world.video_id)}
    per: dict[str, list[int]] = {}
    for crop_id, truth in world.truth.items():
        got = labels.get(crop_id, {})
        for attr in truth:
            per.setdefault(attr, [0, 0])
            value = got.get(attr)
            if attr == "identity" and value is not None and value.isdigit():
                ex = exemplar_of.get(int(value))
                value = world.truth[ex]["identity"] if ex is not None else None
            elif attr == "expression" and value is not None:
                value = sorted(value.split("|"))
            per[attr][0] += value == truth[attr]
            per[attr][1] += 1
    total = sum(v[0] for v in per.values()) / max(1, sum(v[1] for v in per.values()))
    return total, {a: v[0] / max(1, v[1]) for a, v in per.items()}


def summarise(world: EffortWorld, tally: Tally, seconds: float) -> dict:
    n = len(world.truth)
    clicks = {a: tally.clicks[a] for a in ATTRIBUTES if a != GENDER_SET_WITH_IDENTITY}
    total_clicks = sum(clicks.values())
    acc, per_acc = accuracy(world)
    return {
        "crops": n,
        "clicks": clicks,
        "total_clicks": total_clicks,
        "decisions": dict(tally.decisions),
        "actions": {f"{a}/{k}": v for (a, k), v in sorted(tally.actions.items())},
        "crops_per_click": {a: round(n / c, 3) if c else None for a, c in clicks.items()},
        "overall_crops_per_click": round(n * len(ATTRIBUTES) / max(1, total_clicks), 3),
        "accuracy": round(acc, 5),
        "accuracy_per_attribute": {a: round(v, 5) for a, v in per_acc.items()},
        "seconds": round(seconds, 1),
    }


# -- the development clip ------------------------------------------------------------------------
FILM = Path(__file__).resolve().parents[2] / "shared" / "data" / "movie" / "tears_of_steel"
FILM_GENDERS = {1: "male", 2: "male", 3: "female", 4: "female"}  # ids.json: young man, man with glasses, two women
GT_EVERY = 6  # gt.txt labels every 6th frame (frame index 0, 6, 12, ...)
MATCH_IOU = 0.4  # the clip's scoring rule (movie/README.md)


@dataclass
class FilmTruth:
    """The ingested clip's crops with ground-truth identities (same fields as EffortWorld's that scoring reads)."""

    project: Project
    video_id: int
    truth: dict[int, dict]
    crop_track: dict[int, int]

    @property
    def crop_ids(self) -> list[int]:
        return sorted(self.truth)


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _inside(a, b) -> float:
    """Share of box ``a`` lying inside box ``b``."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1])
    return iw * ih / area if area > 0 else 0.0


def gt_boxes_at(gt: dict[int, dict[int, tuple]], cuts: list[int], index: int) -> dict[int, tuple]:
    """Ground-truth boxes ``{id: (x1, y1, x2, y2, flag)}`` at a frame: the labelled frame itself, else the
    labelled frames either side inside the same shot, linearly interpolated (one side only: that side's box)."""
    if index % GT_EVERY == 0:
        return gt.get(index, {})
    shot = bisect.bisect_right(cuts, index)
    lo, hi = index - index % GT_EVERY, index - index % GT_EVERY + GT_EVERY
    sides = [f for f in (lo, hi) if bisect.bisect_right(cuts, f) == shot]
    out: dict[int, tuple] = {}
    for pid in set().union(*(gt.get(f, {}) for f in sides)) if sides else ():
        have = [(f, gt[f][pid]) for f in sides if pid in gt.get(f, {})]
        if len(have) == 2:
            w = (index - lo) / GT_EVERY
            a, b = have[0][1], have[1][1]
            out[pid] = (*(a[i] + w * (b[i] - a[i]) for i in range(4)), a[4])
        else:
            out[pid] = have[0][1]
    return out


def film_truth(project: Project, movie: Path) -> FilmTruth:
    """Ground-truth identity of every ingested crop: one-to-one IoU >= 0.4 matches to flag-1 boxes per frame
    (Hungarian on IoU); a crop at least half inside an ignore region is a background person ("unknown");
    any other crop shows no labelled person ("unsure")."""
    rows = np.loadtxt(movie / "gt.txt", delimiter=",", ndmin=2)
    cuts = json.loads((movie / "shots.json").read_text())["cuts"]
    gt: dict[int, dict[int, tuple]] = {}
    for f, pid, x, y, w, h, flag in rows[:, :7]:
        gt.setdefault(int(f) - 1, {})[int(pid)] = (x, y, x + w, y + h, int(flag))  # MOT frame f is index f - 1
    with project.session() as s:
        crops = s.execute(select(Crop.id, Crop.video_id, Crop.track_id, Crop.frame_index,
                                 Crop.x1, Crop.y1, Crop.x2, Crop.y2)).all()  # fmt: skip
    by_frame: dict[int, list] = {}
    for c in crops:
        by_frame.setdefault(c.frame_index, []).append(c)
    truth: dict[int, dict] = {}
    for index, group in by_frame.items():
        boxes = gt_boxes_at(gt, cuts, index)
        people = [(pid, b) for pid, b in boxes.items() if b[4] == 1]
        ignore = [b for b in boxes.values() if b[4] == 0]
        iou = np.array([[_iou((c.x1, c.y1, c.x2, c.y2), b) for _, b in people] for c in group]).reshape(len(group), len(people))
        matched: dict[int, int] = {}
        if people:
            for r, k in zip(*linear_sum_assignment(-iou), strict=True):
                if iou[r, k] >= MATCH_IOU:
                    matched[group[r].id] = people[k][0]
        for c in group:
            if c.id in matched:
                pid = matched[c.id]
                truth[c.id] = {"identity": f"char:{pid}", "gender": FILM_GENDERS.get(pid, UNSURE)}
            elif any(_inside((c.x1, c.y1, c.x2, c.y2), b) >= 0.5 for b in ignore):
                truth[c.id] = {"identity": UNKNOWN, "gender": UNSURE}
            else:
                truth[c.id] = {"identity": UNSURE}
    video_id = crops[0].video_id if crops else 0
    return FilmTruth(project, video_id, truth, {c.id: c.track_id for c in crops})


def run_film(root: Path, movie: Path = FILM, features: tuple[str, ...] = ()) -> dict | None:
    """Ingest the clip with the defaults, then label identity (with ``features``) and, on a copy, per crop (baseline)."""
    from portrait_builder.cli import main as portrait

    if not (movie / "gt.txt").is_file():
        print(f"development clip skipped: {movie} is not present", file=sys.stderr)
        return None
    t0 = time.perf_counter()
    proj = root / "film"
    with contextlib.redirect_stdout(sys.stderr):  # the commands' own lines must not break --json
        if portrait(["init", str(proj)]) != 0 or portrait(["ingest", "--no-progress", str(proj), str(movie / "clip.mp4")]):
            raise SystemExit("ingest of the development clip failed")
    ingest_s = time.perf_counter() - t0
    shutil.copytree(proj, root / "film_baseline")
    out: dict = {"ingest_s": round(ingest_s, 1)}
    for name, path, whole in (("current", proj, True), ("baseline", root / "film_baseline", False)):
        project = Project.open(path)
        add_annotator(project, "sim_identity", "annotator", "identity")
        film = film_truth(project, movie)
        tally = Tally()
        proposals = whole and "proposals" in features
        if proposals:
            from portrait_builder.characters import update_characters

            update_characters(project, progress=False)  # dlib faces of the crops, then the candidate characters
        with AnnotationService(project, "sim_identity") as service:
            label_identity(ServiceIdentityUI(service, tally, whole_track=whole, proposals=proposals), film, tally)
        acc, per = accuracy(film)
        n = len(film.truth)
        out[name] = {"crops": n, "tracks": len(set(film.crop_track.values())), "clicks": tally.clicks["identity"],
                     "crops_per_click": round(n / max(1, tally.clicks["identity"]), 3),
                     "accuracy": round(per.get("identity", float("nan")), 5),
                     "truth": dict(Counter(t["identity"] for t in film.truth.values()))}  # fmt: skip
        project.close()
    return out


# -- runs ----------------------------------------------------------------------------------------
def make_annotators(project: Project) -> None:
    for attr in ATTRIBUTES:
        if attr != GENDER_SET_WITH_IDENTITY:
            add_annotator(project, f"sim_{attr}", "annotator", attr)


# What the app offers beyond the paper's views, in the order the issue lists them; each is used when the
# annotation service has it. ``--before`` runs the app as it was before them (whole-track identity only).
FEATURES = ("proposals", "character_attributes", "change_points")


def available_features() -> tuple[str, ...]:
    have = {
        "proposals": hasattr(AnnotationService, "confirm_proposal"),
        "character_attributes": hasattr(AnnotationService, "label_character_or_track"),
        "change_points": hasattr(AnnotationService, "label_track") and hasattr(AnnotationService, "toggle_change_point"),
    }
    return tuple(f for f in FEATURES if have[f])


def cluster_characters(world: EffortWorld) -> dict:
    """Candidate characters for the movie (what `portrait characters` does; no clicks), scored by BCubed."""
    from portrait_builder.characters import bcubed, list_candidates, update_characters

    t0 = time.perf_counter()
    update_characters(world.project, progress=False)
    cluster_of = {t: c.id for c in list_candidates(world.project) for t in c.track_ids}
    tids = [t for t in sorted(world.tracks) if world.tracks[t].crop_ids]
    p, r, f1 = bcubed([cluster_of.get(t, -t) for t in tids], [world.tracks[t].person for t in tids])
    return {"bcubed_precision": round(p, 4), "bcubed_recall": round(r, 4), "bcubed_f1": round(f1, 4),
            "candidates": len(set(cluster_of.values())), "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip


def run_current(world: EffortWorld, features: tuple[str, ...] | None = None) -> dict:
    """The app with ``features`` (default: every one the service has); identity first, then the rest."""
    features = available_features() if features is None else tuple(features)
    t0 = time.perf_counter()
    tally = Tally()
    project = world.project
    clusters = cluster_characters(world) if "proposals" in features else None
    with AnnotationService(project, "sim_identity") as service:
        label_identity(ServiceIdentityUI(service, tally, proposals="proposals" in features), world, tally)
    for attr in ATTRIBUTES[2:]:
        with AnnotationService(project, f"sim_{attr}") as service:
            if attr in STATIC and "character_attributes" in features:
                label_attribute(ServiceCharacterUI(service, tally), world, attr, tally)
            elif attr in DYNAMIC and "change_points" in features:
                label_dynamic(ServiceTrackUI(service, tally), world, attr, tally)
            else:
                label_attribute(ServiceAttributeUI(service, tally), world, attr, tally)
    out = summarise(world, tally, time.perf_counter() - t0)
    out["features"] = list(features)
    out["characters"] = clusters
    return out


def run_baseline(world: EffortWorld) -> dict:
    """The paper's workflow: one decision per crop and attribute (identity by exemplar, whole track off)."""
    t0 = time.perf_counter()
    tally = Tally()
    project = world.project
    with AnnotationService(project, "sim_identity") as service:
        label_identity(ServiceIdentityUI(service, tally, whole_track=False), world, tally)
    for attr in ATTRIBUTES[2:]:
        with AnnotationService(project, f"sim_{attr}") as service:
            label_attribute(ServiceAttributeUI(service, tally), world, attr, tally)
    return summarise(world, tally, time.perf_counter() - t0)


def new_world(root: Path, spec: EffortSpec) -> EffortWorld:
    project = Project.init(root)
    world = build_world(project, spec)
    make_annotators(project)
    return world


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shots", type=int, default=EffortSpec.shots)
    ap.add_argument("--baseline-shots", type=int, default=BASELINE_SHOTS,
                    help="shots of the baseline's own film (one click per crop: its rate does not depend on size)")
    ap.add_argument("--characters", type=int, default=EffortSpec.characters)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-film", action="store_true", help="skip the development clip")
    ap.add_argument("--before", action="store_true", help="the app before this issue's features (whole-track identity)")
    ap.add_argument("--features", help=f"comma-separated subset of {','.join(FEATURES)} (default: all the service has)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--keep", type=Path, help="build the projects here and keep them")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    spec = EffortSpec(shots=args.shots, characters=args.characters, seed=args.seed)
    if args.before:
        features: tuple[str, ...] = ()
    elif args.features is not None:
        features = tuple(f for f in args.features.split(",") if f)
        unknown = sorted(set(features) - set(available_features()))
        if unknown:
            ap.error(f"features not available: {', '.join(unknown)}; available: {', '.join(available_features())}")
    else:
        features = available_features()
    root = args.keep or Path(tempfile.mkdtemp(prefix="effort_"))
    try:
        t0 = time.perf_counter()
        world = new_world(root / "current", spec)
        build_s = time.perf_counter() - t0
        current = run_current(world, features)
        base_world = new_world(root / "baseline", replace(spec, shots=min(args.baseline_shots, spec.shots)))
        baseline = run_baseline(base_world)
        world.project.close()
        base_world.project.close()
        film = None if args.no_film else run_film(root, features=features)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    out = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "world": {"crops": current["crops"], "tracks": len(world.tracks), "characters": spec.characters,
                  "shots": spec.shots, "build_s": round(build_s, 1)},  # fmt: skip
        "overall_crops_per_click": current["overall_crops_per_click"],
        "crops_per_click": current["crops_per_click"],
        "accuracy": current["accuracy"],
        "baseline_crops_per_click": baseline["overall_crops_per_click"],
        "current": current,
        "baseline": baseline,
    }
    out["film"] = film
    out["speedup_vs_baseline"] = round(out["overall_crops_per_click"] / out["baseline_crops_per_click"], 2)
    if args.json:
        print(json.dumps(out))
    else:
        print_report(out)
    return 0


def print_report(out: dict) -> None:
    cur, base = out["current"], out["baseline"]
    print(f"synthetic film: {out['world']['crops']} crops, {out['world']['tracks']} tracks, "
          f"{out['world']['characters']} characters, {out['world']['shots']} shots (built in {out['world']['build_s']} s)")
    print(f"{'attribute':<14}{'clicks':>8}{'crops/click':>13}{'baseline':>10}{'accuracy':>10}")
    for attr in ATTRIBUTES:
        c = cur["clicks"].get(attr)
        cpc = cur["crops_per_click"].get(attr)
        bpc = base["crops_per_click"].get(attr)
        note = "  with identity" if attr == GENDER_SET_WITH_IDENTITY else ""
        print(f"{attr:<14}{c if c is not None else '-':>8}{cpc if cpc is not None else note:>13}"
              f"{bpc if bpc is not None else '':>10}{cur['accuracy_per_attribute'][attr]:>10.4f}")
    print(f"features: {', '.join(cur['features']) or 'none (before)'}"
          + (f"; candidate characters: {cur['characters']['candidates']}, BCubed F1 {cur['characters']['bcubed_f1']} "
             f"(P {cur['characters']['bcubed_precision']}, R {cur['characters']['bcubed_recall']})"
             if cur.get("characters") else ""))
    print(f"overall: {cur['overall_crops_per_click']} crop-labels per click (baseline "
          f"{base['overall_crops_per_click']}: x{out['speedup_vs_baseline']}), accuracy {cur['accuracy']:.4f} "
          f"(baseline {base['accuracy']:.4f}); {cur['seconds']} s + {base['seconds']} s simulated")
    film = out.get("film")
    if film:
        c, b = film["current"], film["baseline"]
        print(f"development clip (ingested with the defaults in {film['ingest_s']} s): {c['crops']} crops, "
              f"{c['tracks']} tracks, truth {c['truth']}; identity {c['crops_per_click']} crops/click "
              f"({c['clicks']} clicks, baseline {b['crops_per_click']}), accuracy {c['accuracy']:.4f}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
