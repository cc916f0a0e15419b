"""The identity view proposes rather than asks: for the current crop's track, the most likely character
and the other tracks of its candidate cluster, which one key confirms together.

The proposal, in order: the character a person already confirmed for the track's candidate cluster;
else the movie's character whose crops' faces are nearest the cluster's faces (dlib 128-d
descriptors, mean per character, within dlib's same-person distance); else a new character made from
the cluster. Functions over the caller's session; the annotation service wraps them (one write
transaction, one undoable action per confirm).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session

from portrait_builder.annotation.character_attributes import CharacterAttributesMixin, inherit
from portrait_builder.annotation.characters import CHARACTERS_TTL, CharactersMixin
from portrait_builder.annotation.faces import (
    FACE_MATCH_DISTANCE,
    character_faces,
    cluster_face,
    face_vector,
    nearest_character,
    rank_by_face,
)
from portrait_builder.annotation.identities import preload
from portrait_builder.annotation.types import GENDER, Action, Exemplar, TrackCrop
from portrait_builder.errors import UserError
from portrait_builder.store.labels import LabelRecord, add_label
from portrait_builder.store.models import Candidate, Crop, CurrentLabel, Identity, Label, Track

log = logging.getLogger(__name__)

MAX_CLUSTER_TRACKS = 48  # tracks the proposal lists (and a confirm may label): what the view can show
KINDS = ("confirmed", "similar", "new")


@dataclass(frozen=True)
class ClusterTrack:
    """Another track of the current track's candidate cluster, as the proposal strip shows it."""

    track_id: int
    crop_id: int  # representative crop: the track's first crop with a visible face, else its first crop
    image_path: Path
    crops: int  # crops of the track
    unlabelled: int  # of them without an identity label: what a confirm writes


@dataclass(frozen=True)
class Proposal:
    """What the identity view proposes for one crop.

    ``kind``: ``confirmed`` (a person confirmed the cluster's character), ``similar`` (the nearest
    character by face, ``distance`` below :data:`FACE_MATCH_DISTANCE`) or ``new`` (no character
    matches: create one from the cluster). ``identity_id`` and the character fields are None for ``new``.
    """

    crop_id: int
    track_id: int
    candidate_id: int | None
    kind: str
    identity_id: int | None
    name: str | None
    gender: str | None
    exemplar_crop_id: int | None
    image_path: Path | None
    distance: float | None  # face distance cluster -> character (None: no faces to compare)
    tracks: tuple[ClusterTrack, ...]  # the cluster's other tracks with crops still to label

    @property
    def crops_to_label(self) -> int:
        return sum(t.unlabelled for t in self.tracks)


def crop_cluster(s: Session, crop_id: int) -> tuple[int, int, int | None, int | None]:
    """(movie, track, candidate cluster or None, the cluster's confirmed character or None) of a crop."""
    row = s.execute(
        select(Crop.video_id, Crop.track_id, Track.candidate_id, Candidate.identity_id)
        .join(Track, Track.id == Crop.track_id)
        .outerjoin(Candidate, Candidate.id == Track.candidate_id)
        .where(Crop.id == int(crop_id))
    ).first()
    if row is None:
        raise UserError(f"no crop with id {crop_id}")
    return row.video_id, row.track_id, row.candidate_id, row.identity_id


def cluster_tracks(
    s: Session, identity_attribute: str, candidate_id: int, *, exclude_track: int | None, crop_root: Path,
    limit: int = MAX_CLUSTER_TRACKS,
) -> list[ClusterTrack]:
    """The cluster's other tracks that still have crops without an identity label, longest first."""
    cl = CurrentLabel
    n_labelled = func.count(cl.value)
    face_first = func.min(case((Crop.face_embedding.is_not(None), Crop.id)))
    query = (
        select(Crop.track_id, func.count(Crop.id).label("n"), n_labelled.label("labelled"),
               func.coalesce(face_first, func.min(Crop.id)).label("rep"))
        .join(Track, Track.id == Crop.track_id)
        .outerjoin(cl, and_(cl.crop_id == Crop.id, cl.attribute == identity_attribute))
        .where(Track.candidate_id == int(candidate_id))
        .group_by(Crop.track_id)
    )  # fmt: skip
    if exclude_track is not None:
        query = query.where(Crop.track_id != int(exclude_track))
    rows = [r for r in s.execute(query).all() if r.n > r.labelled]
    rows.sort(key=lambda r: (-(r.n - r.labelled), r.track_id))
    rows = rows[:limit]
    paths = dict(s.execute(select(Crop.id, Crop.path).where(Crop.id.in_([r.rep for r in rows]))).all()) if rows else {}
    return [ClusterTrack(r.track_id, r.rep, crop_root / paths[r.rep], int(r.n), int(r.n - r.labelled)) for r in rows]


def propose(
    s: Session, identity_attribute: str, crop_id: int, *, characters: Sequence, faces: dict[int, np.ndarray],
    crop_root: Path, limit: int = MAX_CLUSTER_TRACKS, use_confirmed: bool = True,
) -> Proposal:
    """The proposal for a crop. ``characters``: the movie's identity rows (``id, name, gender,
    exemplar_crop_id, path``); ``faces``: their mean faces (:func:`character_faces`), both cached by the
    caller. ``use_confirmed=False`` ignores a person's confirmation (a second opinion must not be anchored)."""
    _, track_id, candidate_id, confirmed = crop_cluster(s, crop_id)
    tracks: list[ClusterTrack] = []
    if candidate_id is not None:
        tracks = cluster_tracks(s, identity_attribute, candidate_id, exclude_track=track_id, crop_root=crop_root,
                                limit=limit)
    by_id = {c.id: c for c in characters}
    kind, ident, distance = "new", None, None
    if use_confirmed and confirmed is not None and confirmed in by_id:
        kind, ident = "confirmed", confirmed
    elif faces:
        query = cluster_face(s, [track_id, *(t.track_id for t in tracks)])
        nearest, distance = nearest_character(query, {i: v for i, v in faces.items() if i in by_id})
        if nearest is not None and distance is not None and distance < FACE_MATCH_DISTANCE:
            kind, ident = "similar", nearest
    c = by_id.get(ident) if ident is not None else None
    return Proposal(
        int(crop_id), track_id, candidate_id, kind, ident,
        c.name if c else None, c.gender if c else None, c.exemplar_crop_id if c else None,
        (crop_root / c.path) if c is not None and c.path else None, distance, tuple(tracks),
    )  # fmt: skip


def unlabelled_track_crops(s: Session, identity_attribute: str, track_ids: Sequence[int]) -> list[int]:
    """Crops of the tracks without an identity label, by track then frame."""
    if not track_ids:
        return []
    cl = CurrentLabel
    return list(
        s.scalars(
            select(Crop.id)
            .outerjoin(cl, and_(cl.crop_id == Crop.id, cl.attribute == identity_attribute))
            .where(Crop.track_id.in_(list(track_ids)), cl.value.is_(None))
            .order_by(Crop.track_id, Crop.frame_index)
        )
    )


@dataclass(frozen=True)
class CandidateState:
    """A candidate's confirmation before a confirm changed it (what undo puts back)."""

    candidate_id: int
    identity_id: int | None
    confirmed_by: int | None
    confirmed_at: float | None


def confirm(
    s: Session, taxonomy, crop_id: int, identity_id: int, *, crops: Sequence[int] = (), tracks: Sequence[int] = (),
    whole_track: bool = False, exclude: Sequence[int] = (),
    annotator_id: int | None, stamp: float, source: str = "app", gender_attribute: str | None = "gender",
) -> tuple[list[LabelRecord], CandidateState | None]:
    """Confirm a character for a crop's cluster in the caller's transaction.

    Labels identity (and the character's gender) on the crop (``clicked``), on ``crops`` (more crops
    of its own track, ``propagated``), with ``whole_track`` on every crop of its own track without an
    identity label but ``exclude`` (the strip crops the annotator left out), and on every crop without
    an identity label of ``tracks`` (the cluster's other tracks the annotator kept, ``propagated``);
    marks the crop's candidate confirmed.
    ``tracks`` must lie in the crop's cluster. Returns the labels and the candidate's previous state.
    """
    identity_attribute = next(a.name for a in taxonomy.attributes if a.kind == "identity")
    identity = s.get(Identity, int(identity_id))
    if identity is None:
        raise UserError(f"no identity with id {identity_id}")
    video_id, track_id, candidate_id, _ = crop_cluster(s, crop_id)
    if identity.video_id != video_id:
        raise UserError(f"character {identity.id} belongs to another movie than crop {crop_id}")
    tracks = [int(t) for t in dict.fromkeys(tracks) if int(t) != track_id]
    if tracks:
        in_cluster = set(s.scalars(select(Track.id).where(Track.id.in_(tracks), Track.candidate_id == candidate_id))) \
            if candidate_id is not None else set()
        stray = sorted(set(tracks) - in_cluster)
        if stray:
            raise UserError(f"tracks {', '.join(map(str, stray))} are not in the cluster of crop {crop_id}")
    others = [int(c) for c in dict.fromkeys(crops) if int(c) != int(crop_id)]
    if others:
        strays = sorted(set(others) - set(s.scalars(select(Crop.id).where(Crop.id.in_(others), Crop.track_id == track_id))))
        if strays:
            raise UserError(f"crops {', '.join(map(str, strays[:5]))} are not in the track of crop {crop_id}")
    skip = {int(c) for c in exclude} | set(others) | {int(crop_id)}
    more = unlabelled_track_crops(s, identity_attribute, ([track_id] if whole_track else []) + tracks)
    others += [c for c in more if c not in skip]
    values: dict[str, str] = {identity_attribute: str(identity.id)}
    if identity.gender is not None and gender_attribute in taxonomy.names:
        values[gender_attribute] = identity.gender
    held = preload(s, [int(crop_id), *others], [str(identity.id)])
    records = []
    for c, provenance in [(int(crop_id), "clicked"), *((c, "propagated") for c in others)]:
        for attr, value in values.items():
            records.append(add_label(s, taxonomy, c, attr, value, annotator_id=annotator_id, source=source,
                                     created_at=stamp, provenance=provenance))
    del held
    before = None
    if candidate_id is not None:
        cand = s.get(Candidate, candidate_id)
        before = CandidateState(cand.id, cand.identity_id, cand.confirmed_by, cand.confirmed_at)
        set_candidate(s, CandidateState(cand.id, identity.id, annotator_id, stamp))
    log.info("confirmed character %d for crop %d: %d crops on %d more tracks", identity.id, crop_id, len(others),
             len(tracks))
    return records, before


def set_candidate(s: Session, state: CandidateState) -> None:
    s.execute(
        update(Candidate).where(Candidate.id == state.candidate_id)
        .values(identity_id=state.identity_id, confirmed_by=state.confirmed_by, confirmed_at=state.confirmed_at)
    )  # fmt: skip
    cached = s.identity_map.get(s.identity_key(Candidate, state.candidate_id))
    if cached is not None:
        s.expire(cached)


@dataclass(frozen=True)
class IdentityViewContext:
    """Everything the identity view shows for one crop, read in one session."""

    exemplars: list[Exemplar]  # nearest face first when the crop has a face, else by appearance
    strip: list[TrackCrop]  # the crop's own track
    proposal: Proposal


class ProposalsMixin(CharacterAttributesMixin, CharactersMixin):
    """The identity view's proposal and whole-cluster confirm, as part of the annotation service."""

    def _character_faces(self, s: Session, video_id: int) -> dict[int, np.ndarray]:
        """Mean face per character of the movie, cached like the character list (CHARACTERS_TTL); a
        character this annotator just labelled is read again alone (:meth:`_forget_character`)."""
        cache = self.__dict__.setdefault("_faces_by_movie", {})
        cached = cache.get(video_id)
        if cached is None or time.monotonic() - cached[0] > CHARACTERS_TTL:
            cached = cache[video_id] = (time.monotonic(), {}, set())
        stamp, faces, known = cached
        ids = [r.id for r in self._movie_characters(s, video_id)[1]]
        missing = [i for i in ids if i not in known]
        if missing:
            faces.update(character_faces(s, self._identity_attr(), missing))
            known.update(missing)
        return {i: faces[i] for i in ids if i in faces}

    def _forget_character(self, video_id: int, identity_id: int) -> None:
        self._characters.pop(video_id, None)
        cached = self.__dict__.setdefault("_faces_by_movie", {}).get(video_id)
        if cached is not None:
            cached[1].pop(int(identity_id), None)
            cached[2].discard(int(identity_id))

    def _exemplars(self, s: Session, crop_id: int, limit: int | None) -> list[Exemplar]:
        # The characters' order: nearest face first when the current crop shows one (faces link a
        # character across shots and clothes; colour does not), else the appearance order as before.
        out = super()._exemplars(s, crop_id, None)
        if out:
            video_id, blob = s.execute(select(Crop.video_id, Crop.face_embedding).where(Crop.id == int(crop_id))).one()
            if blob:
                out = rank_by_face(out, face_vector(blob), self._character_faces(s, video_id))
        return out[:limit] if limit else out

    def _proposal(self, s: Session, crop_id: int) -> Proposal:
        video_id = s.scalar(select(Crop.video_id).where(Crop.id == int(crop_id)))
        if video_id is None:
            raise UserError(f"no crop with id {crop_id}")
        characters = self._movie_characters(s, video_id)[1]
        faces = self._character_faces(s, video_id) if characters else {}
        return propose(s, self._identity_attr(), crop_id, characters=characters, faces=faces,
                       crop_root=self.project.crop_root, use_confirmed=not self.second_opinion)  # fmt: skip

    def proposal(self, crop_id: int) -> Proposal:
        """The most likely character for the crop's track and the other tracks of its candidate cluster."""
        with self.project.session() as s:
            return self._proposal(s, crop_id)

    def identity_view_context(self, crop_id: int, *, exemplars: int | None = None, strip: int = 24) -> IdentityViewContext:
        """Exemplars, the track strip and the proposal of one crop in one read."""
        with self.project.session() as s:
            return IdentityViewContext(self._exemplars(s, crop_id, exemplars), self._track_crops(s, crop_id, strip, False),
                                       self._proposal(s, crop_id))  # fmt: skip

    def confirm_proposal(
        self, crop_id: int, identity_id: int | None = None, *, gender: str | None = None, name: str | None = None,
        crops: Iterable[int] = (), tracks: Iterable[int] | None = None, whole_track: bool = False,
        exclude: Iterable[int] = (), source: str = "app",
    ) -> Action:
        """One key confirms the cluster: identity (and the character's gender) on the crop (``clicked``),
        on ``crops`` of its own track (``whole_track``: on all its unlabelled crops but ``exclude``) and
        on every unlabelled crop of ``tracks`` (``propagated``), and
        the crop's candidate is confirmed. ``identity_id`` None creates the character (with ``gender``,
        and this crop as exemplar) in the same action. ``tracks`` None: the proposal's tracks. Crops
        joining a character inherit its static attributes. One undoable action (undo also puts back
        the candidate's confirmation)."""
        self._check_source(source)
        ident_attr = self._identity_attr()
        self._check_write([ident_attr, GENDER])
        if identity_id is None:
            if gender is None:
                raise UserError("a new character needs a gender")
            gender = self.taxonomy.encode(GENDER, gender)
        if tracks is None:
            tracks = [t.track_id for t in self.proposal(crop_id).tracks]
        tracks, crops, exclude = list(tracks), [int(c) for c in crops], [int(c) for c in exclude]
        state: list[CandidateState | None] = []
        chosen: list[int] = []

        def fn(s: Session, stamp: float) -> list[LabelRecord]:
            ident = identity_id
            if ident is None:
                crop = s.get(Crop, int(crop_id))
                if crop is None:
                    raise UserError(f"no crop with id {crop_id}")
                identity = Identity(video_id=crop.video_id, name=name or None, gender=gender, exemplar_crop_id=crop.id,
                                    created_by=self.annotator.id, created_at=stamp)  # fmt: skip
                s.add(identity)
                s.flush()
                ident = identity.id
            records, before = confirm(s, self.taxonomy, crop_id, ident, crops=crops, tracks=tracks,
                                      whole_track=whole_track, exclude=exclude,
                                      annotator_id=self.annotator.id, stamp=stamp, source=source,
                                      gender_attribute=GENDER)  # fmt: skip
            labelled = list(dict.fromkeys(r.crop_id for r in records))
            records += inherit(s, self.taxonomy, labelled, ident, annotator_id=self.annotator.id, stamp=stamp,
                               source=source)  # fmt: skip
            state[:], chosen[:] = [before], [ident]
            return records

        action = self._write(fn, source=source)
        self._drop_from_queue(action)
        before, ident = state[0], chosen[0]
        with self.project.session() as s:
            self._forget_character(s.scalar(select(Crop.video_id).where(Crop.id == int(crop_id))), ident)
        if before is not None:
            after = CandidateState(before.candidate_id, ident, self.annotator.id, None)
            stamp = self._last_stamp
            self._record_effect(action, lambda s: set_candidate(s, before),
                                lambda s: set_candidate(s, replace(after, confirmed_at=stamp)))
        return action

    def _restore_after_restart(self, s: Session, original: Action) -> None:
        # After a restart the stack is rebuilt from labels: a candidate this annotator confirmed with
        # this action (confirmed_at is the action's stamp) goes back to unconfirmed.
        super()._restore_after_restart(s, original)
        label = s.get(Label, original.labels[0].label_id)
        if label is None:
            return
        s.execute(
            update(Candidate)
            .where(Candidate.confirmed_by == self.annotator.id, Candidate.confirmed_at == label.created_at)
            .values(identity_id=None, confirmed_by=None, confirmed_at=None)
        )
