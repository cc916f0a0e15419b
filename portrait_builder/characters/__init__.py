"""Characters across shots: which tracks of a movie show the same character.

``update_characters(project)`` computes what is missing (dlib face embeddings of crops with a visible
face, then the candidate characters of every movie whose tracks are not all clustered or whose faces
changed) and ``list_candidates(project)`` returns them. The identity view builds on
:func:`candidate_of_track`, :func:`candidate_tracks`, :func:`track_face_embedding` and
:func:`face_similarity`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from portrait_builder.characters.bcubed import bcubed
from portrait_builder.characters.cluster import ClusterConfig, TrackFeatures, cluster_tracks
from portrait_builder.characters.store import (
    CandidateInfo,
    candidate_of_track,
    candidate_tracks,
    confirmed_track_ids,
    list_candidates,
    load_track_features,
    replace_candidates,
    track_face_embedding,
    unclustered_track_count,
    video_ids,
)

log = logging.getLogger(__name__)

__all__ = [
    "CandidateInfo",
    "CharactersReport",
    "ClusterConfig",
    "TrackFeatures",
    "bcubed",
    "candidate_of_track",
    "candidate_tracks",
    "cluster_tracks",
    "cluster_video",
    "face_similarity",
    "list_candidates",
    "track_face_embedding",
    "update_characters",
]


@dataclass
class CharactersReport:
    """What :func:`update_characters` did: face embeddings stored, movies re-clustered (id -> candidates)."""

    face_embeddings: int = 0
    clustered: dict[int, int] = field(default_factory=dict)


def face_similarity(a, b) -> float | None:
    """Cosine similarity in [-1, 1] of two face descriptors (arrays or the store's float16 bytes); None
    when either is missing. Same person: above about 0.9 (``ClusterConfig.face_threshold`` 0.45 on unit
    vectors is a cosine of 1 - 0.45^2 / 2 = 0.90)."""
    from portrait_builder.characters.store import decode_f16

    va = decode_f16(a) if isinstance(a, bytes | bytearray) or a is None else np.asarray(a, np.float32)
    vb = decode_f16(b) if isinstance(b, bytes | bytearray) or b is None else np.asarray(b, np.float32)
    if va is None or vb is None or len(va) != len(vb) or not len(va):
        return None
    return float(va @ vb / max(float(np.linalg.norm(va) * np.linalg.norm(vb)), 1e-12))


def cluster_video(project, video_id: int, config: ClusterConfig | None = None) -> int:
    """Re-cluster a movie's tracks outside confirmed candidates into candidates; returns how many."""
    fixed = confirmed_track_ids(project, video_id)
    feats = load_track_features(project, video_id, config)
    keep = np.array([int(t) not in fixed for t in feats.track_ids], bool)
    feats = TrackFeatures(feats.track_ids[keep], feats.shots[keep], feats.faces[keep], feats.appearance[keep],
                          [fr for fr, k in zip(feats.frames, keep, strict=True) if k])  # fmt: skip
    labels = cluster_tracks(feats, config)
    groups: dict[int, list[int]] = {}
    for tid, lab in zip(feats.track_ids, labels, strict=True):
        groups.setdefault(int(lab), []).append(int(tid))
    ids = replace_candidates(project, video_id, list(groups.values()))
    log.info("movie %d: %d tracks -> %d candidate characters (%d tracks confirmed before)", video_id,
             len(feats), len(ids), len(fixed))  # fmt: skip
    return len(ids)


def update_characters(project, video: str | int | None = None, *, config: ClusterConfig | None = None,
                      workers: int | None = None, progress: bool = True, recluster: bool = False) -> CharactersReport:
    """Compute what is missing for the movies named by ``video`` (all: None): face embeddings, then the
    candidates of each movie that has unclustered tracks or new face embeddings (all with ``recluster``)."""
    from portrait_builder.characters.faces import embed_faces
    from portrait_builder.characters.store import missing_face_videos

    report = CharactersReport()
    vids = video_ids(project, video)
    # One pass over every movie's missing faces (one pool of workers, not one per movie).
    with_new_faces = missing_face_videos(project, vids)
    if with_new_faces:
        report.face_embeddings = embed_faces(project, sorted(with_new_faces), workers=workers, progress=progress)
    for vid in vids:
        if recluster or vid in with_new_faces or unclustered_track_count(project, vid):
            report.clustered[vid] = cluster_video(project, vid, config)
    return report
