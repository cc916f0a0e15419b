"""The store side of characters: which crops still need a face embedding, the features of a movie's
tracks, and the candidate characters (``candidates`` / ``tracks.candidate_id``).

A recompute replaces a movie's unconfirmed candidates in one transaction and never touches a confirmed
one (``identity_id`` set by a person): its tracks keep it and are not clustered again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.orm import Session

from portrait_builder.annotation.identities import movie_id
from portrait_builder.characters.appearance import DIM as TORSO_DIM
from portrait_builder.characters.appearance import torso_descriptor
from portrait_builder.characters.cluster import ClusterConfig, TrackFeatures, unit_mean
from portrait_builder.characters.geometry import face_box_in_crop
from portrait_builder.store import Annotator, Candidate, Crop, Identity, Project, Track, Video

log = logging.getLogger(__name__)


#: dlib's face descriptor length.
FACE_DIM = 128


def decode_f16(blob: bytes | None) -> np.ndarray | None:
    """float16 little-endian bytes -> (D,) float32; None for None or empty bytes."""
    if not blob:
        return None
    return np.frombuffer(blob, "<f2").astype(np.float32)


# ------------------------------------------------------------------------------ face embedding jobs
@dataclass(frozen=True)
class FaceJob:
    """One crop whose face needs describing: its file, its box and face box (source pixels), the video's SAR."""

    crop_id: int
    path: str
    box: tuple[float, float, float, float]
    face: tuple[float, float, float, float]
    sar: float


def missing_face_jobs(project: Project, video_ids: Iterable[int] | None = None) -> list[FaceJob]:
    """The crops with a visible face and no face embedding yet, in crop id order."""
    with project.session() as s:
        sars = {vid: float(((rep or {}).get("video") or {}).get("sar") or 1.0)
                for vid, rep in s.execute(select(Video.id, Video.report))}  # fmt: skip
        q = (select(Crop.id, Crop.video_id, Crop.path, Crop.x1, Crop.y1, Crop.x2, Crop.y2,
                    Crop.face_x1, Crop.face_y1, Crop.face_x2, Crop.face_y2)
             .where(Crop.face_visible.is_(True), Crop.face_embedding.is_(None), Crop.face_x1.is_not(None))
             .order_by(Crop.id))  # fmt: skip
        if video_ids is not None:
            q = q.where(Crop.video_id.in_(list(video_ids)))
        rows = s.execute(q).all()
    return [FaceJob(r[0], r[2], (r[3], r[4], r[5], r[6]), (r[7], r[8], r[9], r[10]), sars.get(r[1], 1.0)) for r in rows]


def missing_face_videos(project: Project, video_ids: Iterable[int]) -> set[int]:
    """The movies among ``video_ids`` with crops that show a face and have no face embedding yet."""
    with project.session() as s:
        return set(s.scalars(
            select(Crop.video_id).distinct()
            .where(Crop.video_id.in_(list(video_ids)), Crop.face_visible.is_(True), Crop.face_embedding.is_(None),
                   Crop.face_x1.is_not(None))
        ))  # fmt: skip


def write_face_embeddings(project: Project, values: list[tuple[int, bytes]]) -> None:
    """Store ``(crop_id, float16 bytes)`` pairs in one transaction."""

    def tx(s: Session) -> None:
        for cid, blob in values:
            s.execute(update(Crop).where(Crop.id == cid).values(face_embedding=blob))

    if values:
        project.run_write(tx)


# ----------------------------------------------------------------------------------- track features
def face_width_in_crop(box: tuple[float, float, float, float], face: tuple[float, float, float, float],
                       sar: float = 1.0) -> float:
    """Width in crop pixels of a face box (source pixels) inside the crop cut from ``box``."""
    f = face_box_in_crop(box, face, sar)
    return float(f[2] - f[0])


def _spaced(items: list, k: int) -> list:
    if len(items) <= k:
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, k).round().astype(int)]


def load_track_features(project: Project, video_id: int, config: ClusterConfig | None = None) -> TrackFeatures:
    """Features of a movie's tracks, in track id order (see :class:`ClusterConfig` for what is read)."""
    config = config or ClusterConfig()
    with project.session() as s:
        tracks = s.execute(select(Track.id, Track.shot_index).where(Track.video_id == video_id).order_by(Track.id)).all()
        sar = float(((s.scalar(select(Video.report).where(Video.id == video_id)) or {}).get("video") or {}).get("sar") or 1.0)
        rows = s.execute(
            select(Crop.track_id, Crop.frame_index, Crop.embedding, Crop.face_embedding, Crop.path,
                   Crop.x1, Crop.y1, Crop.x2, Crop.y2, Crop.face_x1, Crop.face_y1, Crop.face_x2, Crop.face_y2)
            .where(Crop.video_id == video_id).order_by(Crop.frame_index, Crop.id)
        ).all()  # fmt: skip
    by_track: dict[int, list] = defaultdict(list)
    for r in rows:
        by_track[r.track_id].append(r)
    root = None

    def torso(c) -> np.ndarray | None:
        nonlocal root
        root = root or project.check_crop_root()
        img = cv2.imread(str(root / c.path), cv2.IMREAD_COLOR)
        return torso_descriptor(img) if img is not None else None

    faces, apps = [], []
    for t in tracks:
        crops = by_track.get(t.id, [])
        f = [decode_f16(c.face_embedding) for c in crops if c.face_embedding and c.face_x1 is not None
             and face_width_in_crop((c.x1, c.y1, c.x2, c.y2), (c.face_x1, c.face_y1, c.face_x2, c.face_y2), sar)
             >= config.min_face_px]  # fmt: skip
        f = [v for v in f if v is not None and len(v) == FACE_DIM]
        a = []
        for c in _spaced(crops, config.appearance_crops):
            v = decode_f16(c.embedding) if config.appearance == "detector" else None
            v = v if v is not None and np.any(v) else torso(c)
            if v is not None:
                a.append(v)
        dims = {len(v) for v in a}
        a = [v for v in a if len(v) == max(dims)] if dims else []
        faces.append(unit_mean(np.array(f, np.float32).reshape(-1, FACE_DIM)))
        apps.append(a)
    app_dim = max((len(a[0]) for a in apps if a), default=TORSO_DIM)
    appearance = [unit_mean(np.array([v for v in a if len(v) == app_dim], np.float32).reshape(-1, app_dim)) for a in apps]
    n = len(tracks)
    return TrackFeatures(
        track_ids=np.array([t.id for t in tracks], np.int64),
        shots=np.array([t.shot_index for t in tracks], np.int64),
        faces=np.array(faces, np.float32).reshape(n, FACE_DIM),
        appearance=np.array(appearance, np.float32).reshape(n, app_dim),
        frames=[np.array([c.frame_index for c in by_track.get(t.id, [])], np.int64) for t in tracks],
    )


# ------------------------------------------------------------------------------------- candidates
def confirmed_track_ids(project: Project, video_id: int) -> set[int]:
    """Tracks in a confirmed candidate of the movie (a person set its identity)."""
    with project.session() as s:
        return set(s.scalars(
            select(Track.id).join(Candidate, Candidate.id == Track.candidate_id)
            .where(Track.video_id == video_id, Candidate.identity_id.is_not(None))
        ))  # fmt: skip


def unclustered_track_count(project: Project, video_id: int) -> int:
    with project.session() as s:
        return int(s.scalar(select(func.count()).select_from(Track)
                            .where(Track.video_id == video_id, Track.candidate_id.is_(None))) or 0)  # fmt: skip


def replace_candidates(project: Project, video_id: int, groups: list[list[int]]) -> list[int]:
    """Replace the movie's unconfirmed candidates by one candidate per group of track ids (one
    transaction). Tracks of confirmed candidates are never moved. Returns the candidate ids, one per
    non-empty group.

    A group keeps the id of the old unconfirmed candidate it shares most tracks with (each old id goes
    to one group at most), so a recompute that changes little keeps the ids the app may be showing;
    old candidates no group took are deleted.
    """

    def tx(s: Session) -> list[int]:
        confirmed = set(s.scalars(select(Track.id).join(Candidate, Candidate.id == Track.candidate_id)
                                  .where(Track.video_id == video_id, Candidate.identity_id.is_not(None))))  # fmt: skip
        old_ids = list(s.scalars(select(Candidate.id).where(Candidate.video_id == video_id,
                                                            Candidate.identity_id.is_(None))))  # fmt: skip
        old_tracks: dict[int, set[int]] = defaultdict(set)
        if old_ids:
            for tid, cid in s.execute(select(Track.id, Track.candidate_id).where(Track.candidate_id.in_(old_ids))):
                old_tracks[cid].add(tid)
            s.execute(update(Track).where(Track.candidate_id.in_(old_ids)).values(candidate_id=None))
        members = [[int(t) for t in g if int(t) not in confirmed] for g in groups]
        members = [m for m in members if m]
        # Greedy by overlap: the largest shared track sets keep their ids first.
        pairs = sorted(((len(old_tracks[c] & set(m)), -c, k) for k, m in enumerate(members) for c in old_tracks
                        if old_tracks[c] & set(m)), reverse=True)  # fmt: skip
        reuse: dict[int, int] = {}
        for _, neg_c, k in pairs:
            if k not in reuse and -neg_c not in reuse.values():
                reuse[k] = -neg_c
        stale = set(old_ids) - set(reuse.values())
        if stale:
            s.execute(delete(Candidate).where(Candidate.id.in_(stale)))
        ids = []
        for k, m in enumerate(members):
            cid = reuse.get(k)
            if cid is None:
                cand = Candidate(video_id=video_id)
                s.add(cand)
                s.flush()
                cid = cand.id
            s.execute(update(Track).where(Track.id.in_(m), Track.video_id == video_id).values(candidate_id=cid))
            ids.append(cid)
        return ids

    return project.run_write(tx)


@dataclass(frozen=True)
class CandidateInfo:
    """One candidate character of a movie, as ``portrait characters`` lists it."""

    id: int
    video_id: int
    video: str
    track_ids: list[int]
    tracks: int
    crops: int
    face_crops: int  # crops with a visible face
    confirmed: bool  # a person said which character it is
    identity_id: int | None
    identity_name: str | None
    confirmed_by: str | None


def list_candidates(project: Project, video_ids: Iterable[int] | None = None) -> list[CandidateInfo]:
    """The candidate characters of the given movies (all: None), largest first within each movie."""
    with project.session() as s:
        q = (select(Candidate.id, Candidate.video_id, Video.title, Candidate.identity_id, Identity.name,
                    Annotator.name.label("annotator"))
             .join(Video, Video.id == Candidate.video_id)
             .outerjoin(Identity, Identity.id == Candidate.identity_id)
             .outerjoin(Annotator, Annotator.id == Candidate.confirmed_by))  # fmt: skip
        if video_ids is not None:
            q = q.where(Candidate.video_id.in_(list(video_ids)))
        cands = s.execute(q).all()
        if not cands:
            return []
        ids = [c.id for c in cands]
        tracks: dict[int, list[int]] = defaultdict(list)
        for tid, cid in s.execute(select(Track.id, Track.candidate_id).where(Track.candidate_id.in_(ids)).order_by(Track.id)):
            tracks[cid].append(tid)
        counts = {cid: (int(n), int(nf or 0)) for cid, n, nf in s.execute(
            select(Track.candidate_id, func.count(Crop.id),
                   func.sum(case((Crop.face_visible.is_(True), 1), else_=0)))
            .join(Crop, Crop.track_id == Track.id)
            .where(Track.candidate_id.in_(ids)).group_by(Track.candidate_id))}  # fmt: skip
    out = [
        CandidateInfo(c.id, c.video_id, c.title, tracks[c.id], len(tracks[c.id]), *counts.get(c.id, (0, 0)),
                      c.identity_id is not None, c.identity_id, c.name, c.annotator)
        for c in cands
    ]  # fmt: skip
    return sorted(out, key=lambda c: (c.video_id, -c.crops, -c.tracks, c.id))


def candidate_of_track(project: Project, track_id: int) -> int | None:
    """The candidate character a track is in (None: not clustered yet)."""
    with project.session() as s:
        return s.scalar(select(Track.candidate_id).where(Track.id == track_id))


def candidate_tracks(project: Project, candidate_id: int) -> list[int]:
    """The track ids of a candidate character, ascending."""
    with project.session() as s:
        return list(s.scalars(select(Track.id).where(Track.candidate_id == candidate_id).order_by(Track.id)))


def track_face_embedding(project: Project, track_id: int) -> np.ndarray | None:
    """The unit-norm mean face descriptor of a track's crops (None: no face embedded yet)."""
    with project.session() as s:
        blobs = list(s.scalars(select(Crop.face_embedding).where(Crop.track_id == track_id,
                                                                 Crop.face_embedding.is_not(None))))  # fmt: skip
    vecs = [v for v in (decode_f16(b) for b in blobs) if v is not None]
    return unit_mean(np.array(vecs, np.float32)) if vecs else None


def video_ids(project: Project, video: str | int | None) -> list[int]:
    """The id of the movie named by id, title or path (all movies' ids for None), by the rules of
    :func:`portrait_builder.annotation.identities.movie_id`."""
    with project.session() as s:
        if video is None:
            return list(s.scalars(select(Video.id).order_by(Video.id)))
        return [movie_id(s, video)]
