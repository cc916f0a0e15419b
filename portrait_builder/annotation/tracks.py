"""Dynamic attributes along tracks: one key labels the crop shown and the rest of its track up to the
next change point an annotator marked; a key marks (or removes) a change point; crops without a
visible face go to the attribute's "unsure" value in one action per track.

A track is one person in one shot, so posture and expression hold for stretches of it: a change point
(``change_points``, revision 0004) at frame F of a track says the attribute may change from F on. The
crop shown gets ``clicked``, the rest of its segment ``propagated``; a label a person gave another crop
(``clicked`` or ``accepted``) is never overwritten. Functions over the caller's session; the annotation
service wraps them (one write transaction, one undoable action each).
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, delete, select
from sqlalchemy.orm import Session

from portrait_builder.annotation.history import HistoryMixin
from portrait_builder.annotation.types import Action
from portrait_builder.errors import UserError
from portrait_builder.store.labels import LabelRecord, add_label, add_labels
from portrait_builder.store.models import ChangePoint, Crop, CurrentLabel, Label
from portrait_builder.store.predictions import predictions_for
from portrait_builder.taxonomy import Taxonomy

log = logging.getLogger(__name__)

# A person decided these for that very crop: propagation along a track never overwrites them.
# None: a label from before provenance was recorded, which was a click.
PER_CROP = ("clicked", "accepted", None)
FACE_ASPECT = "emotion"  # attributes read from the face: "not visible" when the face is not
STRIP_CROPS = 24  # crops the strip shows at most: spread over the whole track, plus the crop shown and its neighbours


@dataclass(frozen=True)
class StripCrop:
    """One crop of the current track as the attribute view's strip shows it."""

    id: int
    frame_index: int
    image_path: Path
    value: str | list[str] | None  # current value (decoded), None when unlabelled
    provenance: str | None  # how the current value came about (None when unlabelled)
    change_point: bool  # a segment starts at this crop (a change point at its frame)
    face_visible: bool | None
    current: bool  # the crop shown


@dataclass(frozen=True)
class CropPrediction:
    """A baseline's guess for the crop shown (``portrait prelabel``): selected in the view, never a label by itself."""

    crop_id: int
    attribute: str
    value: str | list[str]  # decoded
    confidence: float
    model: str


@dataclass(frozen=True)
class TrackContext:
    """What the attribute view reads for the crop shown, in one store read.

    ``segment_crops``: the crops a value key labels (the crop and the rest of its segment, without the
    other crops a person labelled). ``faceless``: crops of the track without a visible face and without
    a per-crop label (what the "not visible" key sends to unsure). ``previous``/``following``: the
    neighbouring crops of the track (for stepping through it).
    """

    crop_id: int
    track_id: int
    attribute: str
    frame_index: int
    track_length: int
    change_points: tuple[int, ...]  # frames, ascending
    segment: tuple[int, int | None]  # (first frame of the crop's segment, next change point or None: the track's end)
    segment_crops: int
    faceless: int
    strip: tuple[StripCrop, ...]
    previous: int | None
    following: int | None
    prediction: CropPrediction | None  # only when the crop has no label of the attribute


@dataclass(frozen=True)
class ChangePointAction(Action):
    """Marking (``added``) or removing a change point: an undoable action that writes no label."""

    crop_id: int = 0
    track_id: int = 0
    attribute: str = ""
    frame_index: int = 0
    added: bool = True

    @property
    def crop_ids(self) -> list[int]:
        return [self.crop_id]


# -- reads ---------------------------------------------------------------------------------------
def _crop(s: Session, crop_id: int):
    row = s.execute(select(Crop.id, Crop.track_id, Crop.frame_index).where(Crop.id == int(crop_id))).first()
    if row is None:
        raise UserError(f"no crop with id {crop_id}")
    return row


def track_rows(s: Session, track_id: int, attribute: str) -> list:
    """The track's crops in frame order with their current value of ``attribute`` and its provenance."""
    cl_on = and_(CurrentLabel.crop_id == Crop.id, CurrentLabel.attribute == attribute)
    return s.execute(
        select(Crop.id, Crop.frame_index, Crop.path, Crop.face_visible, CurrentLabel.value, Label.provenance,
               CurrentLabel.annotator_id)
        .outerjoin(CurrentLabel, cl_on)
        .outerjoin(Label, Label.id == CurrentLabel.label_id)
        .where(Crop.track_id == track_id)
        .order_by(Crop.frame_index, Crop.id)
    ).all()


def change_point_frames(s: Session, track_id: int, attribute: str) -> list[int]:
    return list(s.scalars(
        select(ChangePoint.frame_index)
        .where(ChangePoint.track_id == track_id, ChangePoint.attribute == attribute)
        .order_by(ChangePoint.frame_index)
    ))  # fmt: skip


def segment_of(frames: Sequence[int], frame: int) -> tuple[int | None, int | None]:
    """(change point that starts the frame's segment or None: the track's start, next change point or None)."""
    i = bisect_right(frames, frame)
    return (frames[i - 1] if i else None), (frames[i] if i < len(frames) else None)


def _per_crop(value: str | None, provenance: str | None) -> bool:
    return value is not None and provenance in PER_CROP


def _segment_targets(rows: Sequence, crop_id: int, frame: int, frames: Sequence[int]) -> list:
    """The crop's row and every later row of its segment that has no per-crop label of another crop."""
    _, end = segment_of(frames, frame)
    out = []
    for r in rows:
        if r.id == crop_id:
            out.append(r)
        elif r.frame_index >= frame and (end is None or r.frame_index < end) and not _per_crop(r.value, r.provenance):
            out.append(r)
    return out


def _spread(n: int, keep: set[int], limit: int) -> list[int]:
    """Indices of a strip of at most ``limit`` (+ ``keep``) rows spread over ``n``: evenly spaced, plus ``keep``."""
    if n <= limit:
        return list(range(n))
    step = (n - 1) / max(limit - 1, 1)
    return sorted({round(i * step) for i in range(limit)} | {k for k in keep if 0 <= k < n})


def track_context(s: Session, taxonomy: Taxonomy, crop_root: Path, crop_id: int, attribute: str, *,
                  strip: int = STRIP_CROPS, with_prediction: bool = True, hide_values: bool = False) -> TrackContext:
    """See :class:`TrackContext`. Three queries (the track, its change points, the crop's prediction).

    ``hide_values``: the strip shows no values (a second opinion must not see the first annotator's)."""
    crop = _crop(s, crop_id)
    rows = track_rows(s, crop.track_id, attribute)
    frames = change_point_frames(s, crop.track_id, attribute)
    cps = set(frames)
    pos = next(i for i, r in enumerate(rows) if r.id == crop.id)
    keep = {pos - 1, pos, pos + 1} | {i for i, r in enumerate(rows) if r.frame_index in cps}
    strip_rows = [rows[i] for i in _spread(len(rows), keep, strip)]
    seen_cp: set[int] = set()
    out = []
    for r in strip_rows:
        first_at_cp = r.frame_index in cps and r.frame_index not in seen_cp
        seen_cp.add(r.frame_index)
        shown = None if hide_values else r.value
        out.append(StripCrop(r.id, r.frame_index, crop_root / r.path, taxonomy.decode(attribute, shown),
                             r.provenance if shown is not None else None, first_at_cp, r.face_visible,
                             r.id == crop.id))  # fmt: skip
    start, end = segment_of(frames, crop.frame_index)
    prediction = None
    if with_prediction and rows[pos].value is None:
        pred = predictions_for(s, [crop.id], attribute).get(crop.id)
        if pred is not None and pred.value is not None:
            prediction = CropPrediction(crop.id, attribute, taxonomy.decode(attribute, pred.value), pred.confidence,
                                        pred.model)  # fmt: skip
    unsure = taxonomy.attribute(attribute).unsure_value
    faceless = sum(1 for r in rows
                   if r.face_visible is False and not _per_crop(r.value, r.provenance) and r.value != unsure)  # fmt: skip
    return TrackContext(
        crop.id, crop.track_id, attribute, crop.frame_index, len(rows), tuple(frames),
        (start if start is not None else rows[0].frame_index, end),
        len(_segment_targets(rows, crop.id, crop.frame_index, frames)), faceless, tuple(out),
        rows[pos - 1].id if pos > 0 else None, rows[pos + 1].id if pos + 1 < len(rows) else None, prediction,
    )  # fmt: skip


# -- writes --------------------------------------------------------------------------------------
def label_segment(
    s: Session, taxonomy: Taxonomy, crop_id: int, attribute: str, value, *, annotator_id: int | None, stamp: float,
    source: str = "app", provenance: str = "clicked", along_track: bool = True,
) -> list[LabelRecord]:
    """Label the crop (``provenance``: ``clicked``, or ``accepted`` for a prediction) and, with
    ``along_track``, the rest of its segment (``propagated``): crops from its frame up to the next change
    point, leaving alone other crops a person labelled and crops to which this annotator already gave the
    value (another annotator's equal label is written again: it is this annotator's answer too, for agreement).
    An expression (the emotion aspect) is not propagated to crops without a visible face: it cannot be
    seen there (:func:`label_faceless` sends those to "unsure")."""
    text = taxonomy.encode(attribute, value)
    crop = _crop(s, crop_id)
    targets: list = []
    if along_track:
        rows = track_rows(s, crop.track_id, attribute)
        frames = change_point_frames(s, crop.track_id, attribute)
        needs_face = taxonomy.attribute(attribute).aspect == FACE_ASPECT
        targets = [r for r in _segment_targets(rows, crop.id, crop.frame_index, frames)
                   if r.id != crop.id and not (r.value == text and r.annotator_id == annotator_id)
                   and not (needs_face and r.face_visible is False)]  # fmt: skip
    records = [add_label(s, taxonomy, crop.id, attribute, text, annotator_id=annotator_id, source=source,
                         created_at=stamp, provenance=provenance)]  # fmt: skip
    records += add_labels(s, taxonomy, [r.id for r in targets], attribute, text, annotator_id=annotator_id,
                        stamp=stamp, source=source, provenance="propagated")
    log.debug("track %d %s=%s: crop %d and %d more", crop.track_id, attribute, text, crop.id, len(targets))
    return records


def label_faceless(
    s: Session, taxonomy: Taxonomy, crop_id: int, attribute: str, *, annotator_id: int | None, stamp: float,
    source: str = "app",
) -> list[LabelRecord]:
    """Every crop of the crop's track whose face is not visible (``face_visible`` False; unknown is left
    out) and that has no per-crop label: the attribute's "unsure" value (the crop shown ``clicked``, the
    rest ``propagated``). Change points do not matter: face visibility is per crop."""
    unsure = taxonomy.attribute(attribute).unsure_value
    crop = _crop(s, crop_id)
    rows = [r for r in track_rows(s, crop.track_id, attribute)
            if r.face_visible is False and not _per_crop(r.value, r.provenance) and r.value != unsure]  # fmt: skip
    if not rows:
        raise UserError(f"track {crop.track_id}: no crop without a visible face is left to label")
    records = [add_label(s, taxonomy, crop.id, attribute, unsure, annotator_id=annotator_id, source=source,
                         created_at=stamp) for r in rows if r.id == crop.id]  # fmt: skip
    return records + add_labels(s, taxonomy, [r.id for r in rows if r.id != crop.id], attribute, unsure,
                              annotator_id=annotator_id, stamp=stamp, source=source, provenance="propagated")


def toggle_change_point(s: Session, crop_id: int, attribute: str, *, annotator_id: int | None,
                        stamp: float) -> tuple[int, int, bool]:
    """Mark a change point at the crop's frame, or remove the one there. Returns (track, frame, added).

    A removal that the database skips (on a team store: a change point someone else marked) is refused.
    """
    crop = _crop(s, crop_id)
    first = s.scalar(select(Crop.frame_index).where(Crop.track_id == crop.track_id).order_by(Crop.frame_index).limit(1))
    existing = s.scalar(select(ChangePoint.id).where(ChangePoint.track_id == crop.track_id,
                                                     ChangePoint.attribute == attribute,
                                                     ChangePoint.frame_index == crop.frame_index))  # fmt: skip
    if existing is not None:
        remove_change_point(s, crop.track_id, attribute, crop.frame_index)
        return crop.track_id, crop.frame_index, False
    if crop.frame_index == first:
        raise UserError(f"crop {crop.id} is the first of track {crop.track_id}: a segment already starts there")
    add_change_point(s, crop.track_id, attribute, crop.frame_index, annotator_id=annotator_id, stamp=stamp)
    return crop.track_id, crop.frame_index, True


def add_change_point(s: Session, track_id: int, attribute: str, frame_index: int, *, annotator_id: int | None,
                     stamp: float) -> None:
    s.add(ChangePoint(track_id=track_id, attribute=attribute, frame_index=frame_index, annotator_id=annotator_id,
                      created_at=stamp))  # fmt: skip
    s.flush()


def remove_change_point(s: Session, track_id: int, attribute: str, frame_index: int) -> None:
    done = s.execute(delete(ChangePoint).where(ChangePoint.track_id == track_id, ChangePoint.attribute == attribute,
                                               ChangePoint.frame_index == frame_index)).rowcount  # fmt: skip
    if not done:
        raise UserError(f"the change point at frame {frame_index} of track {track_id} was not removed: "
                        "someone else marked it (or removed it already)")


def forget_labelled(service: HistoryMixin, action: Action) -> None:
    """Drop the crops an action labelled from the service's local queue: a track's crops sit next to each
    other in it, and next_item would otherwise read each one only to find it labelled."""
    if service.attribute in {lab.attribute for lab in action.labels}:
        done = set(action.crop_ids)
        service._queue = type(service._queue)(c for c in service._queue if c not in done)


class TracksMixin(HistoryMixin):
    """Dynamic attributes along tracks, as part of the annotation service."""

    def _forget(self, action: Action) -> Action:
        forget_labelled(self, action)
        return action

    def track_context(self, crop_id: int, attribute: str | None = None, *, strip: int = STRIP_CROPS) -> TrackContext:
        """What the attribute view shows for a crop: its track strip, change points, segment and prediction."""
        attribute = attribute or self.attribute
        self.taxonomy.attribute(attribute)
        with self.project.session() as s:
            return track_context(s, self.taxonomy, self.project.crop_root, crop_id, attribute, strip=strip,
                                 with_prediction=not self.second_opinion, hide_values=self.second_opinion)  # fmt: skip

    def label_track(self, crop_id: int, value, attribute: str | None = None, *, along_track: bool = True,
                    source: str = "app") -> Action:
        """One key: the crop (``clicked``) and the rest of its track up to the next change point
        (``propagated``; other crops' per-crop labels stay). One undoable action."""
        attribute = attribute or self.attribute
        self._check_source(source)
        self._check_write([attribute])
        self.taxonomy.encode(attribute, value)  # fail before opening a transaction
        return self._forget(self._write(lambda s, stamp: label_segment(
            s, self.taxonomy, crop_id, attribute, value, annotator_id=self.annotator.id, stamp=stamp, source=source,
            along_track=along_track), source=source))  # fmt: skip

    def label_faceless(self, crop_id: int, attribute: str | None = None, *, source: str = "app") -> Action:
        """One key per track: its crops without a visible face get "unsure" (see :func:`label_faceless`)."""
        attribute = attribute or self.attribute
        self._check_source(source)
        self._check_write([attribute])
        return self._forget(self._write(lambda s, stamp: label_faceless(
            s, self.taxonomy, crop_id, attribute, annotator_id=self.annotator.id, stamp=stamp, source=source),
            source=source))  # fmt: skip

    def toggle_change_point(self, crop_id: int, attribute: str | None = None) -> ChangePointAction:
        """Mark a change point at the crop shown (the next label from there runs to the following one), or
        remove the one there. One undoable action (in this session: a restart keeps the change point but
        not its undo, as it writes no label)."""
        attribute = attribute or self.attribute
        self._check_write([attribute])
        stamp = self._stamp()
        track_id, frame, added = self.project.run_write(
            lambda s: toggle_change_point(s, crop_id, attribute, annotator_id=self.annotator.id, stamp=stamp))
        action = ChangePointAction("app", (), int(crop_id), track_id, attribute, frame, added)
        self._done.append(action)
        self._redo.clear()
        return action

    # -- undo / redo of change points (labels are HistoryMixin's) ---------------------------------
    def _apply_change_point(self, s: Session, action: ChangePointAction, forward: bool) -> None:
        if action.added == forward:
            add_change_point(s, action.track_id, action.attribute, action.frame_index,
                             annotator_id=self.annotator.id, stamp=self._last_stamp)  # fmt: skip
        else:
            remove_change_point(s, action.track_id, action.attribute, action.frame_index)

    def _undo_side_effects(self, s: Session, original: Action) -> None:
        if isinstance(original, ChangePointAction):
            self._apply_change_point(s, original, forward=False)
        else:
            super()._undo_side_effects(s, original)

    def _redo_side_effects(self, s: Session, original: Action) -> None:
        if isinstance(original, ChangePointAction):
            self._apply_change_point(s, original, forward=True)
        else:
            super()._redo_side_effects(s, original)

    def undo(self) -> Action | None:
        original = self._done[-1] if self._done else None
        action = super().undo()
        if isinstance(original, ChangePointAction) and action is not None:
            return ChangePointAction("undo", (), original.crop_id, original.track_id, original.attribute,
                                     original.frame_index, not original.added)  # fmt: skip
        return action

    def redo(self) -> Action | None:
        original = self._redo[-1][0] if self._redo else None
        action = super().redo()
        if isinstance(original, ChangePointAction) and action is not None:
            # the redone mark is what a second undo must find on the stack
            action = ChangePointAction("redo", (), original.crop_id, original.track_id, original.attribute,
                                       original.frame_index, original.added)  # fmt: skip
            self._done[-1] = action
        return action
