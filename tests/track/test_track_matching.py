"""Cost-matrix functions on hand-built matrices; linear_assignment against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from portrait_builder.track import matching


def test_iou_distance_hand_computed():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(matching.iou_distance(a, b), [[0.0, 1 - 50 / 150, 1.0]], rtol=1e-6)
    assert matching.iou_distance(np.zeros((0, 4)), b).shape == (0, 3)


def test_embedding_distance_is_euclidean_cdist():
    rng = np.random.default_rng(0)
    a = matching.l2_normalise(rng.normal(size=(5, 16)))
    b = matching.l2_normalise(rng.normal(size=(4, 16)))
    np.testing.assert_allclose(matching.embedding_distance(a, b), cdist(a, b), atol=1e-6)
    assert np.all(matching.embedding_distance(np.zeros((3, 0)), np.zeros((2, 0))) == 0)


def test_fuse_motion_gates_and_blends():
    cost = np.array([[0.1, 0.5], [0.4, 0.2]])
    gate = np.array([[1.0, 20.0], [3.0, 9.0]])
    fused = matching.fuse_motion(cost, gate, 9.4877, 0.98)
    assert fused[0, 0] == pytest.approx(0.98 * 0.1 + 0.02 * 1.0)
    assert np.isinf(fused[0, 1])
    assert fused[1, 1] == pytest.approx(0.98 * 0.2 + 0.02 * 9.0)


def test_linear_assignment_hand_case():
    cost = np.array([[0.1, 0.9, np.inf], [0.2, 0.3, 0.8], [0.95, 0.9, 0.99]])
    matches, ur, uc = matching.linear_assignment(cost, 0.7)
    assert sorted(map(tuple, matches.tolist())) == [(0, 0), (1, 1)]
    assert ur.tolist() == [2] and uc.tolist() == [2]
    m, ur, uc = matching.linear_assignment(np.zeros((0, 3)), 0.5)
    assert m.shape == (0, 2) and ur.size == 0 and uc.tolist() == [0, 1, 2]


def _brute_force(cost, limit):
    """Best partial matching: each matched pair gains limit - cost (lapjv's extend_cost semantics)."""
    n, m = cost.shape
    best = 0.0
    for k in range(1, min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                pairs = list(zip(rows, cols, strict=True))
                if all(cost[r, c] < limit for r, c in pairs):
                    gain = sum(limit - cost[r, c] for r, c in pairs)
                    if gain > best + 1e-12:
                        best = gain
    return best


@pytest.mark.parametrize("seed", range(25))
def test_linear_assignment_is_optimal_partial_matching(seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 5, size=2)
    cost = rng.uniform(0, 1.2, size=(n, m))
    cost[rng.uniform(size=(n, m)) < 0.2] = np.inf
    matches, ur, uc = matching.linear_assignment(cost, 0.7)
    gain = sum(0.7 - cost[r, c] for r, c in matches)
    assert gain == pytest.approx(_brute_force(cost, 0.7))
    assert all(cost[r, c] < 0.7 for r, c in matches)
    assert len(set(matches[:, 0])) == len(matches) == len(set(matches[:, 1]))
    assert sorted(list(ur) + list(matches[:, 0])) == list(range(n))
    assert sorted(list(uc) + list(matches[:, 1])) == list(range(m))
