"""Face descriptors in the identity view: a character's and a cluster's mean face, the nearest
character to a face, exemplars ranked by face.

Descriptors are dlib's 128-d face vectors, stored per crop as float16 bytes (``crops.face_embedding``);
distances are Euclidean, as dlib's same-person rule is. Functions over the caller's session.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from portrait_builder.store.models import Crop, CurrentLabel

# dlib's face_recognition_model_v1: two descriptors closer than 0.6 (Euclidean) are the same person
# (99.38 % on LFW at that threshold, dlib's documentation). Above it the cluster is a new character.
FACE_MATCH_DISTANCE = 0.6
FACES_PER_CLUSTER = 256  # faces averaged for a cluster's descriptor: enough for a stable mean, bounded per click


def face_vector(blob: bytes | None) -> np.ndarray | None:
    """A stored face descriptor (float16 bytes) as float32, unnormalised (dlib's distances are Euclidean)."""
    if not blob:
        return None
    return np.frombuffer(blob, dtype="<f2").astype(np.float32)


def _mean(vectors: Iterable[np.ndarray | None]) -> np.ndarray | None:
    vs = [v for v in vectors if v is not None]
    if not vs or any(v.shape != vs[0].shape for v in vs):
        return None
    return np.mean(np.stack(vs), axis=0)


# Crops per character whose faces make its mean face. A mean over every crop made each identity
# click re-read every face of the movie's characters (the cache is dropped on each confirm): 108,000
# descriptors, 15 ms a click, on a well-labelled 250,000-crop store, growing as labelling proceeds.
# 64 faces already average out a descriptor's per-frame noise (it falls with the square root).
FACE_SAMPLE = 64


def character_faces(s: Session, identity_attribute: str, identity_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """Mean face descriptor of each character over up to FACE_SAMPLE of its crops with a face
    (characters without faces: absent). One indexed query per character, each stopping early."""
    out = {}
    for ident in identity_ids:
        blobs = s.scalars(
            select(Crop.face_embedding)
            .join(CurrentLabel, Crop.id == CurrentLabel.crop_id)
            .where(CurrentLabel.attribute == identity_attribute, CurrentLabel.value == str(int(ident)),
                   Crop.face_embedding.is_not(None))
            .limit(FACE_SAMPLE)
        ).all()  # fmt: skip
        mean = _mean(face_vector(b) for b in blobs)
        if mean is not None:
            out[int(ident)] = mean
    return out


def nearest_character(query: np.ndarray | None, faces: dict[int, np.ndarray]) -> tuple[int | None, float | None]:
    """(character id, Euclidean distance) of the nearest character face to ``query``; (None, None) without faces."""
    if query is None:
        return None, None
    best, best_d = None, None
    for ident, vec in sorted(faces.items()):
        if vec.shape != query.shape:
            continue
        d = float(np.linalg.norm(vec - query))
        if best_d is None or d < best_d:
            best, best_d = ident, d
    return best, best_d


def rank_by_face(exemplars: list, query: np.ndarray | None, faces: dict[int, np.ndarray]) -> list:
    """Exemplars (``portrait_builder.annotation.Exemplar``) nearest face first when the current crop has
    a face; ``similarity`` becomes the cosine of the crop's face and the character's mean face.
    Characters without faces follow in their previous order. Without a face: unchanged."""
    if query is None or not any(e.identity_id in faces for e in exemplars):
        return exemplars
    qn = float(np.linalg.norm(query)) or 1.0
    scored = []
    for i, e in enumerate(exemplars):
        vec = faces.get(e.identity_id)
        if vec is None or vec.shape != query.shape:
            scored.append((1, 0.0, i, e))
            continue
        cos = float(vec @ query) / (qn * (float(np.linalg.norm(vec)) or 1.0))
        scored.append((0, float(np.linalg.norm(vec - query)), i, replace(e, similarity=cos)))
    return [e for *_, e in sorted(scored, key=lambda t: t[:3])]


def cluster_face(s: Session, track_ids: Sequence[int]) -> np.ndarray | None:
    """Mean face descriptor of the tracks' crops (at most :data:`FACES_PER_CLUSTER` of them)."""
    if not track_ids:
        return None
    blobs = s.scalars(
        select(Crop.face_embedding)
        .where(Crop.track_id.in_(list(track_ids)), Crop.face_embedding.is_not(None))
        .order_by(Crop.id)
        .limit(FACES_PER_CLUSTER)
    ).all()
    return _mean(face_vector(b) for b in blobs)
