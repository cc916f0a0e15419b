"""The one type that travels from detector to tracker to crop writer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from portrait_builder.boxes import as_boxes


@dataclass(frozen=True)
class Detections:
    """Struct of parallel arrays for N detections in one frame.

    xyxy: (N, 4) float32, absolute source-frame pixels.
    scores: (N,) float32 in [0, 1].
    embeddings: (N, D) float32 appearance embeddings, L2-normalised (D may be 0).
    track_ids: (N,) int64 tracker ids, or None before tracking.
    faces: (N, 4) float32 xyxy face box of each detection in the same pixels as ``xyxy``, a NaN row
        where no face is visible; None from detectors that do not look for faces.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    embeddings: np.ndarray
    track_ids: np.ndarray | None = None
    faces: np.ndarray | None = None

    def __post_init__(self):
        xyxy = as_boxes(self.xyxy)
        n = len(xyxy)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        emb = np.asarray(self.embeddings, dtype=np.float32)
        if emb.size == 0:
            emb = np.zeros((n, emb.shape[1] if emb.ndim == 2 else 0), np.float32)
        if len(scores) != n or emb.ndim != 2 or len(emb) != n:
            raise ValueError(f"Detections arrays disagree: {n} boxes, {len(scores)} scores, embeddings {emb.shape}")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "embeddings", emb)
        if self.track_ids is not None:
            ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
            if len(ids) != n:
                raise ValueError(f"Detections: {len(ids)} track ids for {n} boxes")
            object.__setattr__(self, "track_ids", ids)
        if self.faces is not None:
            faces = np.asarray(self.faces, dtype=np.float32).reshape(-1, 4)
            if len(faces) != n:
                raise ValueError(f"Detections: {len(faces)} face rows for {n} boxes")
            object.__setattr__(self, "faces", faces)

    @classmethod
    def empty(cls, embedding_dim: int = 0, *, faces: bool = False) -> Detections:
        """No detections; ``faces=True`` from a face-aware detector (an empty (0, 4) ``faces``)."""
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros((0, embedding_dim), np.float32),
            faces=np.zeros((0, 4), np.float32) if faces else None,
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> Detections:
        """Index with a boolean mask, an integer array or a slice; always returns a new Detections."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        return Detections(
            self.xyxy[index],
            self.scores[index],
            self.embeddings[index],
            None if self.track_ids is None else self.track_ids[index],
            None if self.faces is None else self.faces[index],
        )

    def with_track_ids(self, track_ids) -> Detections:
        return Detections(self.xyxy, self.scores, self.embeddings, track_ids, self.faces)

    @property
    def has_face(self) -> np.ndarray:
        """(N,) bool: a face box is attached (always False without ``faces``)."""
        if self.faces is None:
            return np.zeros(len(self), bool)
        return ~np.isnan(self.faces).any(axis=1)

    @property
    def heights(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]
