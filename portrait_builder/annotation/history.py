"""The annotation service's label writes and their history: one click is one action, undone and redone
from the label history (rebuilt from the store after a restart).

Every write is one committed transaction through :func:`portrait_builder.store.labels.add_label`, so
killing the app loses at most the click in flight.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from portrait_builder.annotation.base import ServiceBase
from portrait_builder.annotation.types import Action, ActionLabel
from portrait_builder.store.labels import LabelRecord, add_label
from portrait_builder.store.leases import insert_leases, release_leases
from portrait_builder.store.models import Crop, CurrentLabel, Label

log = logging.getLogger(__name__)

HISTORY_WINDOW = 2000  # labels of this annotator replayed to rebuild undo/redo after a restart
MAX_STACK = 500

WriteFn = Callable[[Session, float], list[LabelRecord]]


def _provenance(s: Session, label_id: int) -> str | None:
    row = s.get(Label, label_id)
    return row.provenance if row is not None else None


def to_action(source: str, records: Sequence[LabelRecord]) -> Action:
    return Action(source, tuple(ActionLabel(r.crop_id, r.attribute, r.value, r.id) for r in records))


class HistoryMixin(ServiceBase):
    # -- writing -------------------------------------------------------------------------------
    def _write(self, fn: WriteFn, *, source: str, relabel: Sequence[int] = ()) -> Action:
        """Run ``fn(session, stamp) -> list[LabelRecord]`` as one click; record it for undo."""
        stamp = self._stamp()

        def tx(s: Session) -> list[LabelRecord]:
            records = fn(s, stamp)
            crop_ids = list({r.crop_id for r in records} | set(relabel))
            if crop_ids:  # labelled: the queue's leases on them are done
                release_leases(s, self.attribute, self.annotator.id, crop_ids)
            return records

        action = to_action(source, self.project.run_write(tx))
        self._push(action)
        return action

    def _push(self, action: Action) -> None:
        if not action.labels:
            return
        self._done.append(action)
        del self._done[:-MAX_STACK]
        self._redo.clear()

    def _labels(self, s: Session, crop_ids: Sequence[int], values: dict[str, object], stamp: float, source: str) -> list[LabelRecord]:
        out = []
        for crop_id in crop_ids:
            for attr, value in values.items():
                out.append(
                    add_label(s, self.taxonomy, int(crop_id), attr, value, annotator_id=self.annotator.id, source=source, created_at=stamp)
                )
        return out

    # -- undo / redo ---------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def _rebuild_stacks(self) -> None:
        """Replay this annotator's recent history: app/review/synthetic clicks push, undo pops, redo re-pushes."""
        with self.project.session() as s:
            rows = list(
                s.execute(
                    select(Label.id, Label.crop_id, Label.attribute, Label.value, Label.source, Label.created_at)
                    .where(Label.annotator_id == self.annotator.id)
                    .order_by(Label.id.desc())
                    .limit(HISTORY_WINDOW)
                )
            )
        rows.reverse()
        groups: list[tuple[str, list]] = []
        key = None
        for r in rows:
            k = (r.created_at, r.source)
            if k != key:
                groups.append((r.source, []))
                key = k
            groups[-1][1].append(ActionLabel(r.crop_id, r.attribute, r.value, r.id))
            self._last_stamp = max(self._last_stamp, r.created_at)
        done: list[Action] = []
        redo: list[tuple[Action, Action]] = []
        for source, labels in groups:
            action = Action(source, tuple(labels))
            if source == "undo":
                if done:
                    redo.append((done.pop(), action))
            elif source == "redo":
                if redo:
                    redo.pop()
                done.append(action)
            else:
                done.append(action)
                redo.clear()
        self._done, self._redo = done[-MAX_STACK:], redo[-MAX_STACK:]

    def undo(self) -> Action | None:
        """Revert this annotator's last click: each of its labels gets the value it replaced (or none).

        A label someone else has changed since is left alone. Returns the undo action (its
        ``crop_ids`` are the crops to show again) or None when there is nothing to undo.
        """
        if not self._done:
            return None
        original = self._done[-1]

        def fn(s: Session, stamp: float) -> list[LabelRecord]:
            out = []
            for lab in original.labels:
                current = s.get(CurrentLabel, (lab.crop_id, lab.attribute))
                if current is None or current.value != lab.value:
                    log.info("undo skips crop %d %s: changed since", lab.crop_id, lab.attribute)
                    continue
                previous = s.execute(
                    select(Label.value, Label.provenance)
                    .where(Label.crop_id == lab.crop_id, Label.attribute == lab.attribute, Label.id < lab.label_id)
                    .order_by(Label.id.desc())
                    .limit(1)
                ).first()
                # the value comes back with how it came about, so a later character-level change still
                # moves a value that was not hand-set; undoing an inherited label writes an inherited one
                # (the identity labeller's login may write no other label of that attribute)
                undone = _provenance(s, lab.label_id)
                provenance = previous.provenance if previous is not None and undone != "inherited" else undone
                out.append(
                    add_label(s, self.taxonomy, lab.crop_id, lab.attribute, previous.value if previous else None,
                              annotator_id=self.annotator.id, source="undo", created_at=stamp,
                              provenance=provenance)
                )
            self._undo_side_effects(s, original)
            return out

        undo_action = self._write_history(fn, "undo")
        self._done.pop()
        self._redo.append((original, undo_action))
        self._requeue(original.crop_ids)
        return undo_action

    def redo(self) -> Action | None:
        """Re-apply the last undone click (where nothing changed since the undo)."""
        if not self._redo:
            return None
        original, undone = self._redo[-1]
        restored = {(lab.crop_id, lab.attribute): lab.value for lab in undone.labels}

        def fn(s: Session, stamp: float) -> list[LabelRecord]:
            out = []
            for lab in original.labels:
                key = (lab.crop_id, lab.attribute)
                if key not in restored:
                    continue
                current = s.get(CurrentLabel, key)
                if (current.value if current is not None else None) != restored[key]:
                    continue
                out.append(
                    add_label(s, self.taxonomy, lab.crop_id, lab.attribute, lab.value,
                              annotator_id=self.annotator.id, source="redo", created_at=stamp,
                              provenance=_provenance(s, lab.label_id))
                )
            self._redo_side_effects(s, original)
            return out

        redo_action = self._write_history(fn, "redo")
        self._redo.pop()
        self._done.append(redo_action)
        self._redone(original, redo_action)
        return redo_action

    # What an action changed besides labels (a candidate's confirmation, a character's attribute) is
    # put back by these hooks inside the undo's (redo's) transaction; see CharacterAttributesMixin.
    def _undo_side_effects(self, s: Session, original: Action) -> None:
        pass

    def _redo_side_effects(self, s: Session, original: Action) -> None:
        pass

    def _redone(self, original: Action, redone: Action) -> None:
        pass

    def _write_history(self, fn: WriteFn, source: str) -> Action:
        stamp = self._stamp()
        return to_action(source, self.project.run_write(lambda s: fn(s, stamp)))

    def _requeue(self, crop_ids: Sequence[int]) -> None:
        """After an undo the crops are unlabelled again: lease them back to us, first in the queue."""
        attr = self.attribute

        def tx(s: Session) -> list[int]:
            unlabelled = list(
                s.scalars(
                    select(Crop.id)
                    .outerjoin(CurrentLabel, and_(CurrentLabel.crop_id == Crop.id, CurrentLabel.attribute == attr))
                    .where(Crop.id.in_(list(crop_ids)), CurrentLabel.value.is_(None))
                )
            )
            return insert_leases(s, attr, self.annotator.id, unlabelled, time.time() + self.lease_seconds)

        for crop_id in reversed(self.project.run_write(tx)):
            if crop_id in self._queue:
                self._queue.remove(crop_id)
            self._queue.appendleft(crop_id)
