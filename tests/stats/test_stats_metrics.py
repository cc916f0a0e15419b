"""LTS_k, Gini and imbalance factor: hand-computed cases and a pairwise reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portrait_builder.stats import gini, imbalance_factor, lts


@pytest.mark.parametrize("n_classes,per_class", [(1, 4), (2, 7), (3, 3), (5, 7), (7, 2), (10, 1), (100, 3), (1065, 12)])
def test_uniform_distribution_gives_one(n_classes, per_class):
    assert lts([per_class] * n_classes, k=0.2) == 1.0
    assert lts(np.full(n_classes, per_class, dtype=float), k=0.3) == pytest.approx(1.0, rel=1e-12)
    # DESIGN.md's literal whole-class count: 1.0 only when k * N is a whole number
    assert lts([per_class] * n_classes, k=0.2, fractional=False) == pytest.approx(
        math.ceil(round(0.2 * n_classes, 9)) / (0.2 * n_classes), rel=1e-12)


@pytest.mark.parametrize(
    "counts,k,literal,fractional",
    [
        # 100 samples, need 60: 50 + 30 reach it with 2 classes -> 2 / (0.6 * 5); fractionally the
        # second class gives 10 of its 30 -> (1 + 1/3) / 3
        ([50, 30, 10, 5, 5], 0.6, 2 / 3, (1 + 1 / 3) / 3),
        # one dominant class: 91 >= 20 -> 1 / (0.2 * 10); fractionally 20/91 of it -> (20/91) / 2
        ([91, 1, 1, 1, 1, 1, 1, 1, 1, 1], 0.2, 0.5, 10 / 91),
        # need 95: 91 + four 1s -> 5 / (0.95 * 10) either way (the fifth class is needed whole)
        ([1, 1, 91, 1, 1, 1, 1, 1, 1, 1], 0.95, 5 / 9.5, 5 / 9.5),
        # k N not an integer: ceil(0.6) / 0.6 literally, 0.6 / 0.6 fractionally
        ([3, 3, 3], 0.2, 1 / 0.6, 1.0),
        # two balanced genders: 2.5 literally
        ([120, 120], 0.2, 2.5, 1.0),
        # empty classes are classes: N = 5, need 5 of 10 -> 1 / (0.5 * 5); half the class -> 0.5 / 2.5
        ([10, 0, 0, 0, 0], 0.5, 0.4, 0.2),
        # exact threshold reached (20 of 100 with k = 0.2): 2 classes of 10, not 3
        ([10] * 10, 0.2, 1.0, 1.0),
    ],
)
def test_hand_computed(counts, k, literal, fractional):
    assert lts(counts, k=k, fractional=False) == pytest.approx(literal, rel=1e-12)
    assert lts(counts, k=k) == pytest.approx(fractional, rel=1e-12)


def test_lts_order_invariant_and_edge_cases():
    counts = [5, 1, 9, 3, 3, 0, 7]
    assert lts(counts) == lts(sorted(counts)) == lts(np.array(counts[::-1]))
    assert math.isnan(lts([]))
    assert math.isnan(lts([0, 0]))
    with pytest.raises(ValueError, match="k must be in"):
        lts([1, 2], k=1.0)
    with pytest.raises(ValueError, match="non-negative"):
        lts([1, -2])


def pairwise_gini(x):
    x = np.asarray(x, dtype=float)
    return np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=60).filter(lambda v: sum(v) > 0))
def test_gini_equals_pairwise_definition(counts):
    assert gini(counts) == pytest.approx(pairwise_gini(counts), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=60).filter(lambda v: sum(v) > 0),
       st.floats(0.01, 0.99))
def test_lts_is_definition(counts, k):
    """Brute force over m = 1, 2, ... classes (largest first) until they reach k of all samples; the
    fractional count takes the share of the m-th class still needed. Exact rational arithmetic."""
    from fractions import Fraction

    kf = Fraction(k).limit_denominator(10**9)
    ordered = sorted(counts, reverse=True)
    need = kf * sum(ordered)
    m = next(m for m in range(1, len(ordered) + 1) if sum(ordered[:m]) >= need)
    n_k = (m - 1) + (need - sum(ordered[: m - 1])) / ordered[m - 1]
    n = len(counts)
    assert lts(counts, k, fractional=False) == pytest.approx(float(m / (kf * n)))
    assert lts(counts, k) == pytest.approx(float(n_k / (kf * n)))
    # never above 1, and below the literal count by less than 1 / (k N)
    assert lts(counts, k) <= 1.0
    assert 0 <= lts(counts, k, fractional=False) - lts(counts, k) < 1 / (k * n) + 1e-12


def test_gini_and_imbalance_hand_computed():
    assert gini([4, 4, 4, 4]) == 0.0
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)  # (N - 1) / N when one class has everything
    assert gini([1, 3]) == pytest.approx(0.25)  # |1-3| * 2 / (2 * 4 * 2)
    assert imbalance_factor([10, 0, 2, 5]) == 5.0  # empty classes ignored
    assert imbalance_factor([3, 3]) == 1.0
    assert math.isnan(imbalance_factor([0, 0]))
