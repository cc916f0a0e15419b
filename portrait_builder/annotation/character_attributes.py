"""Static attributes once per character: age, physique and height set on a character (stored in
``identities.attributes``) and inherited by its crops; per track for crops without a character.

Functions over the caller's session (one write transaction each, stamped by the caller, so the
annotation service records the whole decision as one undoable action). A crop's hand-set label
(provenance ``clicked``) always wins: neither a character-level value nor a later change to it
overwrites one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from portrait_builder.annotation.history import HistoryMixin
from portrait_builder.annotation.types import Action
from portrait_builder.errors import UserError
from portrait_builder.store.labels import LabelRecord, add_label, add_labels
from portrait_builder.store.models import Crop, CurrentLabel, Identity, Label
from portrait_builder.taxonomy import Taxonomy

log = logging.getLogger(__name__)

GENDER = "gender"  # also static, but set with the identity (the paper) and stored in identities.gender
HAND_SET = ("clicked", None)  # None: a label from before provenance was recorded, which was a click
CHUNK = 900  # stays under SQLite's bound-parameter limit


def character_attributes(taxonomy: Taxonomy) -> tuple[str, ...]:
    """The static attributes set once per character: single-valued appearance attributes but gender
    (which the identity view sets with the identity). Portrait250K: age, physique, height."""
    return tuple(
        a.name for a in taxonomy.attributes if a.aspect == "appearance" and a.kind == "single" and a.name != GENDER
    )


def check_character_attribute(taxonomy: Taxonomy, attribute: str) -> None:
    taxonomy.attribute(attribute)
    allowed = character_attributes(taxonomy)
    if attribute not in allowed:
        raise UserError(f"{attribute!r} is not set per character; per-character attributes: {', '.join(allowed)}")


def _identity_attr(taxonomy: Taxonomy) -> str:
    name = next((a.name for a in taxonomy.attributes if a.kind == "identity"), None)
    if name is None:
        raise UserError(f"taxonomy {taxonomy.name} has no identity attribute")
    return name


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    ids = list(ids)
    for i in range(0, len(ids), CHUNK):
        yield ids[i:i + CHUNK]


def current_with_provenance(s: Session, crop_ids: Sequence[int], attribute: str) -> dict[int, tuple[str | None, str | None]]:
    """``{crop_id: (current value, its provenance)}`` for the crops that have a current label of ``attribute``."""
    out: dict[int, tuple[str | None, str | None]] = {}
    for part in _chunks(sorted(set(crop_ids))):
        rows = s.execute(
            select(CurrentLabel.crop_id, CurrentLabel.value, Label.provenance)
            .join(Label, Label.id == CurrentLabel.label_id)
            .where(CurrentLabel.attribute == attribute, CurrentLabel.crop_id.in_(part))
        )
        out.update((r.crop_id, (r.value, r.provenance)) for r in rows)
    return out


def is_hand_set(current: tuple[str | None, str | None] | None) -> bool:
    """A crop's current label was chosen by a person for that crop (a cleared label is no label)."""
    return current is not None and current[0] is not None and current[1] in HAND_SET


def character_crops(s: Session, taxonomy: Taxonomy, identity_id: int) -> list[int]:
    """Crops whose current identity label is this character."""
    ident_attr = _identity_attr(taxonomy)
    return list(
        s.scalars(
            select(CurrentLabel.crop_id)
            .where(CurrentLabel.attribute == ident_attr, CurrentLabel.value == str(int(identity_id)))
            .order_by(CurrentLabel.crop_id)
        )
    )


def _write_missing(
    s: Session, taxonomy: Taxonomy, crop_ids: Sequence[int], attribute: str, value: str, provenance: str, *,
    annotator_id: int | None, stamp: float, source: str,
) -> list[LabelRecord]:
    """Label the crops that have no hand-set label of ``attribute`` and do not already hold ``value``."""
    current = current_with_provenance(s, crop_ids, attribute)
    targets = [c for c in crop_ids if not is_hand_set(current.get(c)) and (current.get(c) or (None,))[0] != value]
    # one INSERT and one current-labels move: a key on a character or a track writes tens to hundreds
    # of labels (250,000-crop store: 17 rows a key one at a time were 60 % of the key's 46 ms)
    records = add_labels(s, taxonomy, targets, attribute, value, annotator_id=annotator_id, stamp=stamp,
                         source=source, provenance=provenance)
    return records


def inherit(
    s: Session, taxonomy: Taxonomy, crop_ids: Sequence[int], identity_id: int, *, annotator_id: int | None,
    stamp: float, source: str = "app",
) -> list[LabelRecord]:
    """The hook where identity labels are written: crops just assigned to a character take its static
    attributes (provenance ``inherited``) unless a person set that attribute on the crop by hand."""
    identity = s.get(Identity, int(identity_id))
    if identity is None or not identity.attributes or not crop_ids:
        return []
    records: list[LabelRecord] = []
    for attribute in character_attributes(taxonomy):
        value = identity.attributes.get(attribute)
        if value is not None:
            records += _write_missing(s, taxonomy, list(crop_ids), attribute, value, "inherited",
                                      annotator_id=annotator_id, stamp=stamp, source=source)
    return records


def set_character_attribute(
    s: Session, taxonomy: Taxonomy, identity_id: int, attribute: str, value, *, annotator_id: int | None,
    stamp: float, source: str = "app",
) -> tuple[list[LabelRecord], str | None]:
    """Set ``attribute`` on the character and label its crops (``inherited``; hand-set labels stay).

    Returns (the labels written, the character's previous value of the attribute, for undo).
    """
    check_character_attribute(taxonomy, attribute)
    text = taxonomy.encode(attribute, value)
    identity = s.get(Identity, int(identity_id))
    if identity is None:
        raise UserError(f"no character with id {identity_id}; see `portrait identities list`")
    previous = (identity.attributes or {}).get(attribute)
    store_character_value(s, identity.id, attribute, text)
    crops = character_crops(s, taxonomy, identity.id)
    records = _write_missing(s, taxonomy, crops, attribute, text, "inherited", annotator_id=annotator_id,
                             stamp=stamp, source=source)
    log.info("character %d: %s=%s, %d of %d crops labelled", identity.id, attribute, text, len(records), len(crops))
    return records, previous


def store_character_value(s: Session, identity_id: int, attribute: str, text: str | None) -> None:
    """Write one key of ``identities.attributes`` (``None`` removes it).

    An UPDATE statement whose row count is checked: on a team store the database skips the row for a
    login without the right to label ``attribute``, and that must read as a refusal.
    """
    identity = s.get(Identity, int(identity_id))
    if identity is None:
        raise UserError(f"no character with id {identity_id}")
    attrs = dict(identity.attributes or {})
    if text is None:
        attrs.pop(attribute, None)
    else:
        attrs[attribute] = text
    done = s.execute(
        update(Identity).where(Identity.id == identity.id).values(attributes=attrs or None)
    ).rowcount
    if not done:
        raise UserError(f"the database refused to set {attribute} on character {identity.id}: "
                        f"it needs the right to label {attribute} (ask a maintainer if you need it)")
    s.expire(identity)


def track_crops_without_character(s: Session, taxonomy: Taxonomy, crop_id: int) -> tuple[int, list[int]]:
    """(track id, crops of the crop's track that have no character: no identity label naming one)."""
    ident_attr = _identity_attr(taxonomy)
    track_id = s.scalar(select(Crop.track_id).where(Crop.id == int(crop_id)))
    if track_id is None:
        raise UserError(f"no crop with id {crop_id}")
    rows = s.execute(
        select(Crop.id, CurrentLabel.value)
        .outerjoin(CurrentLabel, and_(CurrentLabel.crop_id == Crop.id, CurrentLabel.attribute == ident_attr))
        .where(Crop.track_id == track_id)
        .order_by(Crop.frame_index)
    ).all()
    return track_id, [r.id for r in rows if not (r.value or "").isdigit()]


def set_track_attribute(
    s: Session, taxonomy: Taxonomy, crop_id: int, attribute: str, value, *, annotator_id: int | None,
    stamp: float, source: str = "app",
) -> list[LabelRecord]:
    """Crops without a character: one key labels the whole track. The crop shown gets ``clicked``;
    the track's other crops without a character and without a hand-set label get ``propagated``."""
    check_character_attribute(taxonomy, attribute)
    text = taxonomy.encode(attribute, value)
    _, crops = track_crops_without_character(s, taxonomy, crop_id)
    records = [add_label(s, taxonomy, int(crop_id), attribute, text, annotator_id=annotator_id, source=source,
                         created_at=stamp, provenance="clicked")]
    others = [c for c in crops if c != int(crop_id)]
    records += _write_missing(s, taxonomy, others, attribute, text, "propagated", annotator_id=annotator_id,
                              stamp=stamp, source=source)
    return records


@dataclass(frozen=True)
class CharacterContext:
    """What the character-level view (age, physique, height) shows for the current crop.

    With a character (``identity_id``), one key sets the value on it (every crop of it without a
    hand-set label, and crops assigned to it later); without one, on the crop's track.
    """

    crop_id: int
    attribute: str
    track_id: int
    identity_id: int | None
    name: str | None
    gender: str | None
    exemplar_path: Path | None
    character_crops: int  # crops of the character (0 without one)
    value: str | None  # the character's value of the attribute (None: not set yet)
    track_crops: int  # crops of the track without a character (what a per-track key labels)


class CharacterAttributesMixin(HistoryMixin):
    """Static attributes once per character, as part of the annotation service."""

    def _side_effects(self) -> dict:
        # Not label rows, so not in the label history: what undo/redo of an action must also restore,
        # keyed by the action's first label id. In memory: after a restart, see _restore_after_restart.
        effects = self.__dict__.get("_effects_by_label")
        if effects is None:
            effects = self.__dict__["_effects_by_label"] = {}
        return effects

    def _record_effect(self, action: Action, undo_fn, redo_fn) -> None:
        if action.labels:
            self._side_effects()[action.labels[0].label_id] = (undo_fn, redo_fn)

    def _undo_side_effects(self, s: Session, original: Action) -> None:
        effect = self._side_effects().get(original.labels[0].label_id) if original.labels else None
        if effect is not None:
            effect[0](s)
        elif original.labels:
            self._restore_after_restart(s, original)

    def _redo_side_effects(self, s: Session, original: Action) -> None:
        effect = self._side_effects().get(original.labels[0].label_id) if original.labels else None
        if effect is not None:
            effect[1](s)

    def _redone(self, original: Action, redone: Action) -> None:
        # the redo is the action now on the stack: a second undo must find the same side effect
        effect = self._side_effects().get(original.labels[0].label_id) if original.labels else None
        if effect is not None and redone.labels:
            self._side_effects()[redone.labels[0].label_id] = effect

    def _drop_from_queue(self, action: Action) -> None:
        # One key labelled a character's or a track's crops, many of them queued here: their leases went
        # with the write, and next_item would otherwise load each one to find it labelled.
        done = set(action.crop_ids)
        if done and any(c in done for c in self._queue):
            kept = [c for c in self._queue if c not in done]
            self._queue.clear()
            self._queue.extend(kept)

    def _restore_after_restart(self, s: Session, original: Action) -> None:
        """Hook for parts whose side effects can be recovered from the store (see ProposalsMixin)."""

    def character_context(self, crop_id: int, attribute: str | None = None) -> CharacterContext:
        """The current crop's character (if any) with its value of ``attribute`` (default: this queue's)."""
        attribute = attribute or self.attribute
        check_character_attribute(self.taxonomy, attribute)
        ident_attr = self._identity_attr()
        with self.project.session() as s:
            value = s.scalar(select(CurrentLabel.value).where(CurrentLabel.crop_id == int(crop_id),
                                                              CurrentLabel.attribute == ident_attr))  # fmt: skip
            track_id, without = track_crops_without_character(s, self.taxonomy, crop_id)
            identity = s.get(Identity, int(value)) if value and value.isdigit() else None
            if identity is None:
                return CharacterContext(int(crop_id), attribute, track_id, None, None, None, None, 0, None, len(without))
            count = s.scalar(select(func.count()).select_from(CurrentLabel).where(
                CurrentLabel.attribute == ident_attr, CurrentLabel.value == str(identity.id))) or 0  # fmt: skip
            path = s.scalar(select(Crop.path).where(Crop.id == identity.exemplar_crop_id)) \
                if identity.exemplar_crop_id else None
            return CharacterContext(
                int(crop_id), attribute, track_id, identity.id, identity.name, identity.gender,
                self._image_path(path) if path else None, int(count), (identity.attributes or {}).get(attribute),
                len(without),
            )  # fmt: skip

    def set_character_attribute(self, identity_id: int, attribute: str, value, *, source: str = "app") -> Action:
        """Set a static attribute on a character: stored on it and labelled (``inherited``) on each of its
        crops without a hand-set label; crops assigned to it later inherit it. One undoable action."""
        self._check_source(source)
        check_character_attribute(self.taxonomy, attribute)
        self._check_write([attribute])
        self.taxonomy.encode(attribute, value)
        before: list[str | None] = []

        def fn(s: Session, stamp: float) -> list[LabelRecord]:
            records, previous = set_character_attribute(s, self.taxonomy, identity_id, attribute, value,
                                                         annotator_id=self.annotator.id, stamp=stamp, source=source)
            before[:] = [previous]
            return records

        action = self._write(fn, source=source)
        text = self.taxonomy.encode(attribute, value)
        self._record_effect(
            action,
            lambda s: store_character_value(s, identity_id, attribute, before[0]),
            lambda s: store_character_value(s, identity_id, attribute, text),
        )
        self._drop_from_queue(action)
        return action

    def set_track_attribute(self, crop_id: int, attribute: str, value, *, source: str = "app") -> Action:
        """Crops without a character: one key labels the crop (``clicked``) and the rest of its track
        without a character (``propagated``; hand-set labels stay). One undoable action."""
        self._check_source(source)
        check_character_attribute(self.taxonomy, attribute)
        self._check_write([attribute])
        self.taxonomy.encode(attribute, value)
        action = self._write(lambda s, stamp: set_track_attribute(s, self.taxonomy, crop_id, attribute, value,
                                                                  annotator_id=self.annotator.id, stamp=stamp,
                                                                  source=source), source=source)  # fmt: skip
        self._drop_from_queue(action)
        return action

    def label_character_or_track(self, crop_id: int, value, attribute: str | None = None, *, source: str = "app") -> Action:
        """What the character-level view's value key does: the crop's character when it has one, else its track."""
        ctx = self.character_context(crop_id, attribute)
        if ctx.identity_id is not None:
            return self.set_character_attribute(ctx.identity_id, ctx.attribute, value, source=source)
        return self.set_track_attribute(crop_id, ctx.attribute, value, source=source)
