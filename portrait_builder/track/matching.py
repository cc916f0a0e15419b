"""Association as small pure functions over cost matrices (rows: tracks, columns: detections).

Every function takes and returns plain NumPy arrays, so each stage of the tracker can be tested on
a hand-built matrix. Costs are float64; ``np.inf`` means "may not be matched".
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from portrait_builder.boxes import box_iou


def iou_distance(track_boxes: np.ndarray, det_boxes: np.ndarray) -> np.ndarray:
    """(N, M) cost 1 - IoU between N track boxes and M detection boxes (xyxy)."""
    return 1.0 - box_iou(track_boxes, det_boxes).astype(np.float64)


def l2_normalise(features: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation into a new float32 array; all-zero rows stay zero."""
    f = np.asarray(features, dtype=np.float32)
    norm = np.linalg.norm(f, axis=1, keepdims=True)
    return f / np.maximum(norm, 1e-12)


def embedding_distance(track_features: np.ndarray, det_features: np.ndarray) -> np.ndarray:
    """(N, M) Euclidean distance between track (smoothed) features and detection features.

    JDE computes ``cdist(track_smooth, det_feat)`` with SciPy's default (Euclidean) metric; on
    L2-normalised features it lies in [0, 2]. With zero-dimensional features (an IoU/motion-only
    detector) every cost is 0, so only the motion term of :func:`fuse_motion` decides.
    """
    a = np.asarray(track_features, dtype=np.float64)
    b = np.asarray(det_features, dtype=np.float64)
    n, m = len(a), len(b)
    if n == 0 or m == 0 or a.shape[1] == 0:
        return np.zeros((n, m))
    # SciPy's cdist, as JDE: exact (no |a|^2 + |b|^2 - 2ab cancellation) and single-threaded C, which
    # beat a BLAS matmul here because BLAS thread pools oversubscribe busy machines at these sizes.
    return cdist(a, b, "euclidean")


def fuse_motion(
    cost: np.ndarray, gating_distance: np.ndarray, gating_threshold: float, motion_weight: float
) -> np.ndarray:
    """JDE's ``fuse_motion``: gate, then blend appearance with motion.

    ``cost`` (N, M) is the embedding distance, ``gating_distance`` (N, M) the squared Mahalanobis
    distance of each detection box under each track's Kalman prediction. Pairs beyond
    ``gating_threshold`` become ``inf``; the rest cost ``motion_weight * cost + (1 - motion_weight) *
    gating_distance`` (JDE: lambda = 0.98 on the embedding term).
    """
    cost = np.asarray(cost, dtype=np.float64)
    gate = np.asarray(gating_distance, dtype=np.float64)
    fused = motion_weight * cost + (1.0 - motion_weight) * gate
    return np.where(gate > gating_threshold, np.inf, fused)


def linear_assignment(cost: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost matching that only accepts pairs with cost < ``limit``.

    Same semantics as ``lap.lapjv(cost, extend_cost=True, cost_limit=limit)`` used by JDE: leaving a
    row or a column unmatched costs ``limit / 2``, so a pair is worth matching exactly when its cost
    is below ``limit``. Implemented with SciPy by minimising ``min(cost - limit, 0)``: entries at or
    above the limit (and ``inf``) become 0, i.e. as good as unmatched, and are dropped afterwards.

    Returns ``matches`` (K, 2) int64 [row, col], ``unmatched_rows``, ``unmatched_cols`` (sorted).
    """
    cost = np.asarray(cost, dtype=np.float64)
    n, m = cost.shape
    if n == 0 or m == 0:
        return np.zeros((0, 2), np.int64), np.arange(n, dtype=np.int64), np.arange(m, dtype=np.int64)
    shifted = np.where(np.isfinite(cost), np.minimum(cost - limit, 0.0), 0.0)
    rows, cols = linear_sum_assignment(shifted)
    keep = cost[rows, cols] < limit
    matches = np.stack([rows[keep], cols[keep]], axis=1).astype(np.int64)
    unmatched_rows = np.setdiff1d(np.arange(n), matches[:, 0]).astype(np.int64)
    unmatched_cols = np.setdiff1d(np.arange(m), matches[:, 1]).astype(np.int64)
    return matches, unmatched_rows, unmatched_cols
