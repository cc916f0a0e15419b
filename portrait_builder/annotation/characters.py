"""The annotation service's characters: label a crop with a character of its movie (one click sets
identity and gender), create, rename and merge characters, and what the identity view reads (the
movie's characters as exemplars, most similar first, and the strip of the crop's track).

Outside the app (command line, imports) characters are handled by :mod:`portrait_builder.annotation.identities`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, aliased

from portrait_builder.annotation.character_attributes import inherit
from portrait_builder.annotation.history import HistoryMixin, to_action
from portrait_builder.annotation.identities import MergeResult, crop_counts, get_identity, merge_labels
from portrait_builder.annotation.types import GENDER, Action, Exemplar, IdentityInfo, TrackCrop
from portrait_builder.errors import UserError
from portrait_builder.store.labels import LabelRecord
from portrait_builder.store.models import Crop, CurrentLabel, Identity

CHARACTERS_TTL = 10.0  # seconds before a movie's character list is read again

# Built once: a fresh alias per query costs more than the query on the click path.
_CL = aliased(CurrentLabel, name="cl")


def _embedding(blob: bytes | None) -> np.ndarray | None:
    if not blob:
        return None
    vec = np.frombuffer(blob, dtype="<f2").astype(np.float32)
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else None


def identity_values(s: Session, ident_attr: str, identity_id) -> dict[str, object]:
    """The labels one identity click writes: the identity and, when known, the identity's gender."""
    identity = s.get(Identity, int(identity_id))
    if identity is None:
        raise UserError(f"no identity with id {identity_id}")
    values: dict[str, object] = {ident_attr: str(identity.id)}
    if identity.gender is not None:
        values[GENDER] = identity.gender
    return values


class CharactersMixin(HistoryMixin):
    def assign_identity(self, crop_ids: int | Iterable[int], identity_id: int, *, source: str = "app") -> Action:
        """Set identity and the identity's gender on the crops (one click on an exemplar)."""
        ids = self._ids(crop_ids)
        self._check_source(source)
        ident_attr = self._identity_attr()
        self._check_write([ident_attr, GENDER])

        def fn(s: Session, stamp: float) -> list[LabelRecord]:
            records = self._labels(s, ids, identity_values(s, ident_attr, identity_id), stamp, source)
            # crops joining a character inherit its static attributes (age, physique, height)
            return records + inherit(s, self.taxonomy, ids, int(identity_id), annotator_id=self.annotator.id,
                                     stamp=stamp, source=source)

        return self._write(fn, source=source)

    def new_identity(
        self,
        crop_id: int,
        gender: str,
        name: str | None = None,
        *,
        also: Iterable[int] = (),
        source: str = "app",
    ) -> IdentityInfo:
        """Create a character of the crop's movie with this crop as exemplar; label identity and gender.

        ``also``: more crops (e.g. the rest of the track) labelled with the new identity in the same click.
        """
        self._check_source(source)
        ident_attr = self._identity_attr()
        self._check_write([ident_attr, GENDER])
        gender = self.taxonomy.encode(GENDER, gender)
        created: list[IdentityInfo] = []

        def fn(s: Session, stamp: float) -> list[LabelRecord]:
            crop = s.get(Crop, int(crop_id))
            if crop is None:
                raise UserError(f"no crop with id {crop_id}")
            identity = Identity(
                video_id=crop.video_id,
                name=(name or None),
                gender=gender,
                exemplar_crop_id=crop.id,
                created_by=self.annotator.id,
                created_at=stamp,
            )
            s.add(identity)
            s.flush()
            created.clear()
            created.append(IdentityInfo(identity.id, identity.video_id, identity.name, identity.gender, crop.id))
            targets = list(dict.fromkeys([crop.id, *(int(c) for c in also)]))
            return self._labels(s, targets, {ident_attr: str(identity.id), GENDER: gender}, stamp, source)

        self._write(fn, source=source)
        info = created[0]
        self._characters.pop(info.video_id, None)
        return info

    def unknown_person(self, crop_ids: int | Iterable[int], gender: str, *, source: str = "app") -> Action:
        """No identity ('unknown') but still a gender."""
        ident_attr = self._identity_attr()
        unknown = next(v.name for v in self.taxonomy.attribute(ident_attr).values if not v.unsure)
        ids = self._ids(crop_ids)
        self._check_source(source)
        self._check_write([ident_attr, GENDER])
        self.taxonomy.encode(GENDER, gender)
        return self._write(lambda s, stamp: self._labels(s, ids, {ident_attr: unknown, GENDER: gender}, stamp, source), source=source)

    def rename_identity(self, identity_id: int, name: str | None) -> IdentityInfo:
        self._check_write([self._identity_attr()])

        def tx(s: Session) -> IdentityInfo:
            identity = s.get(Identity, int(identity_id))
            if identity is None:
                raise UserError(f"no identity with id {identity_id}")
            identity.name = name or None
            return IdentityInfo(identity.id, identity.video_id, identity.name, identity.gender, identity.exemplar_crop_id)

        return self.project.run_write(tx)

    def merge_identities(self, keep_id: int, other_id: int) -> MergeResult:
        """Two characters of one movie that are one person: every crop labelled ``other_id`` gets a new
        identity label ``keep_id`` (and KEEP's gender where it differs), as one undoable action."""
        ident_attr = self._identity_attr()
        self._check_write([ident_attr, GENDER])
        moved: list[tuple[int, int]] = []

        def fn(s: Session, stamp: float) -> list[LabelRecord]:
            records, n_moved, n_gender = merge_labels(s, self.taxonomy, keep_id, other_id,
                                                      annotator_id=self.annotator.id, stamp=stamp)  # fmt: skip
            moved[:] = [(n_moved, n_gender)]
            # the merged crops join KEEP: they inherit its static attributes (hand-set labels stay)
            crops = list(dict.fromkeys(r.crop_id for r in records))
            return records + inherit(s, self.taxonomy, crops, int(keep_id), annotator_id=self.annotator.id,
                                     stamp=stamp)

        # not self._write: that also returns this queue's leases on the written crops, and the merged
        # crops were labelled already (in no identity queue); another queue's leases must stay
        stamp = self._stamp()
        records = self.project.run_write(lambda s: fn(s, stamp))
        self._push(to_action("app", records))
        with self.project.session() as s:
            keep, other = get_identity(s, self.taxonomy, keep_id), get_identity(s, self.taxonomy, other_id)
        self._characters.pop(keep.video_id, None)
        return MergeResult(keep, other, moved[0][0], moved[0][1], self.annotator.name)

    # -- identity view reads -------------------------------------------------------------------
    def exemplars(self, crop_id: int, limit: int | None = None) -> list[Exemplar]:
        """The characters of the crop's movie, most similar exemplar first (cosine of float16 embeddings).

        Identities without an exemplar embedding (or a current crop without one) sort after those
        with one, then by crop count.
        """
        with self.project.session() as s:
            return self._exemplars(s, crop_id, limit)

    def identity_context(self, crop_id: int, *, exemplars: int | None = None, strip: int = 24) -> tuple[list[Exemplar], list[TrackCrop]]:
        """:meth:`exemplars` and :meth:`track_crops` (the whole track) of one crop in one read (what the identity view shows)."""
        with self.project.session() as s:
            return self._exemplars(s, crop_id, exemplars), self._track_crops(s, crop_id, strip, False)

    def _movie_characters(self, s: Session, video_id: int) -> tuple[float, list, dict[int, np.ndarray | None]]:
        """The movie's identity rows and exemplar embeddings, cached for CHARACTERS_TTL seconds."""
        cached = self._characters.get(video_id)
        if cached is None or time.monotonic() - cached[0] > CHARACTERS_TTL:
            rows = s.execute(
                select(Identity.id, Identity.name, Identity.gender, Identity.exemplar_crop_id, Crop.path, Crop.embedding)
                .outerjoin(Crop, Crop.id == Identity.exemplar_crop_id)
                .where(Identity.video_id == video_id)
                .order_by(Identity.id)
            ).all()
            cached = (time.monotonic(), rows, {r.id: _embedding(r.embedding) for r in rows})
            self._characters[video_id] = cached
        return cached

    def _exemplars(self, s: Session, crop_id: int, limit: int | None) -> list[Exemplar]:
        ident_attr = self._identity_attr()
        crop = s.execute(select(Crop.video_id, Crop.embedding).where(Crop.id == crop_id)).first()
        if crop is None:
            raise UserError(f"no crop with id {crop_id}")
        _, rows, embeddings = self._movie_characters(s, crop.video_id)
        if not rows:
            return []
        counts = crop_counts(s, ident_attr, [r.id for r in rows])
        query = _embedding(crop.embedding)
        out = []
        for r in rows:
            emb = embeddings.get(r.id)
            sim = float(query @ emb) if query is not None and emb is not None and emb.shape == query.shape else None
            out.append(
                Exemplar(
                    r.id, r.name, r.gender, counts.get(r.id, 0), r.exemplar_crop_id,
                    self._image_path(r.path) if r.path else None, sim,
                )
            )
        out.sort(key=lambda e: (e.similarity is None, -(e.similarity or 0.0), -e.crop_count, e.identity_id))
        return out[:limit] if limit else out

    def track_crops(self, crop_id: int, limit: int = 24, *, unlabelled_only: bool = False) -> list[TrackCrop]:
        """Other crops of the crop's track, the ``limit`` nearest frames, in frame order.

        Labelled crops are included (``TrackCrop.labelled``) unless ``unlabelled_only``.
        """
        with self.project.session() as s:
            return self._track_crops(s, crop_id, limit, unlabelled_only)

    def _identity_label(self, ident_attr: str, value: str, names: dict[int, str | None]) -> str:
        """What a person reads for a stored identity value: the character's name, ``ID n``, or the value's label."""
        if value.isdigit():
            ident = int(value)
            return names.get(ident) or f"ID {ident}"
        for v in self.taxonomy.attribute(ident_attr).values:  # two values (unknown, unsure)
            if v.name == value:
                return v.label
        return value

    def _track_crops(self, s: Session, crop_id: int, limit: int, unlabelled_only: bool) -> list[TrackCrop]:
        ident_attr = self._identity_attr()
        crop = s.execute(select(Crop.track_id, Crop.frame_index, Crop.video_id).where(Crop.id == crop_id)).first()
        if crop is None:
            raise UserError(f"no crop with id {crop_id}")
        cl = _CL
        query = (
            select(Crop.id, Crop.frame_index, Crop.path, cl.value)
            .outerjoin(cl, and_(cl.crop_id == Crop.id, cl.attribute == ident_attr))
            .where(Crop.track_id == crop.track_id, Crop.id != crop_id)
        )
        if unlabelled_only:
            query = query.where(cl.value.is_(None))
        # a track is short (one shot): sort its rows here rather than ask the store for abs() ordering
        rows = sorted(s.execute(query).all(), key=lambda r: (abs(r.frame_index - crop.frame_index), r.frame_index))
        rows = sorted(rows[:limit], key=lambda r: r.frame_index)
        names: dict[int, str | None] = {}
        if not self.second_opinion and any(r.value is not None and r.value.isdigit() for r in rows):
            # the movie's characters are cached for the exemplar grid: names cost no extra query per click
            names = {c.id: c.name for c in self._movie_characters(s, crop.video_id)[1]}
        out = []
        for r in rows:
            if r.value is None:
                out.append(TrackCrop(r.id, r.frame_index, self._image_path(r.path), None))
            elif self.second_opinion:  # labelled, but the earlier answer stays hidden (no anchoring)
                out.append(TrackCrop(r.id, r.frame_index, self._image_path(r.path), None, True, None))
            else:
                label = self._identity_label(ident_attr, r.value, names)
                out.append(TrackCrop(r.id, r.frame_index, self._image_path(r.path), r.value, True, label))
        return out

    def track_targets(self, crop_id: int, exclude: Iterable[int] = (), *, unlabelled_only: bool = True) -> list[int]:
        """The crop and every other crop of its track (unlabelled ones by default) minus ``exclude``."""
        ident_attr = self._identity_attr()
        skip = {int(c) for c in exclude}
        with self.project.session() as s:
            track_id = s.scalar(select(Crop.track_id).where(Crop.id == crop_id))
            if track_id is None:
                raise UserError(f"no crop with id {crop_id}")
            cl = _CL
            query = (
                select(Crop.id)
                .outerjoin(cl, and_(cl.crop_id == Crop.id, cl.attribute == ident_attr))
                .where(Crop.track_id == track_id)
                .order_by(Crop.frame_index)
            )
            if unlabelled_only:
                query = query.where(or_(cl.value.is_(None), Crop.id == crop_id))
            ids = list(s.scalars(query))
        return [c for c in ids if c not in skip]
