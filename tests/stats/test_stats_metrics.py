"""LTS_k (the paper's Eq. 1 and the interpolated variant), Gini and imbalance factor: hand-computed
cases, a brute-force reference of the definition and a pairwise Gini reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portrait_builder.stats import gini, imbalance_factor, lts


@pytest.mark.parametrize("n_classes,per_class", [(1, 4), (2, 7), (3, 3), (5, 7), (7, 2), (10, 1), (100, 3), (1065, 12)])
def test_uniform_distribution(n_classes, per_class):
    # interpolated: exactly 1 for any N
    assert lts([per_class] * n_classes, k=0.2, variant="interpolated") == 1.0
    assert lts(np.full(n_classes, per_class, dtype=float), k=0.3, variant="interpolated") == pytest.approx(1.0, rel=1e-12)
    # the paper's whole-class count (the default): 1.0 only when k * N is a whole number
    paper = math.ceil(round(0.2 * n_classes, 9)) / (0.2 * n_classes)
    assert lts([per_class] * n_classes, k=0.2) == pytest.approx(paper, rel=1e-12)
    assert lts([per_class] * n_classes, k=0.2, variant="paper") == pytest.approx(paper, rel=1e-12)


@pytest.mark.parametrize(
    "counts,k,paper,interpolated",
    [
        # 100 samples, need 60: 50 + 30 reach it with 2 classes -> 2 / (0.6 * 5); interpolated, the
        # second class gives 10 of its 30 -> (1 + 1/3) / 3
        ([50, 30, 10, 5, 5], 0.6, 2 / 3, (1 + 1 / 3) / 3),
        # one dominant class: 91 >= 20 -> 1 / (0.2 * 10); interpolated: 20/91 of it -> (20/91) / 2
        ([91, 1, 1, 1, 1, 1, 1, 1, 1, 1], 0.2, 0.5, 10 / 91),
        # need 95: 91 + four 1s -> 5 / (0.95 * 10) either way (the fifth class is needed whole)
        ([1, 1, 91, 1, 1, 1, 1, 1, 1, 1], 0.95, 5 / 9.5, 5 / 9.5),
        # k N not an integer: ceil(0.6) / 0.6 by the paper, 0.6 / 0.6 interpolated
        ([3, 3, 3], 0.2, 1 / 0.6, 1.0),
        # two balanced genders: 2.5 literally
        ([120, 120], 0.2, 2.5, 1.0),
        # empty classes are classes: N = 5, need 5 of 10 -> 1 / (0.5 * 5); half the class -> 0.5 / 2.5
        ([10, 0, 0, 0, 0], 0.5, 0.4, 0.2),
        # exact threshold reached (20 of 100 with k = 0.2): 2 classes of 10, not 3
        ([10] * 10, 0.2, 1.0, 1.0),
    ],
)
def test_hand_computed(counts, k, paper, interpolated):
    assert lts(counts, k=k) == pytest.approx(paper, rel=1e-12)  # the paper's Eq. 1 is the default
    assert lts(counts, k=k, variant="interpolated") == pytest.approx(interpolated, rel=1e-12)


def test_table3_shape_paper_versus_interpolated():
    """Hand-computed on 751 classes (Market-1501's train identities; k N = 150.2 as in Table 3).
    2 x 30 + 749 x 10 = 7,550 samples, k = 0.2 needs 1,510: 30 + 30 + 145 classes of 10 reach it
    exactly, so n_k = 147 whole classes in both variants. One sample fewer (a 9 instead of a 10):
    7,549 samples need 1,509.8; 146 classes hold 1,500, the 147th (a 10) crosses, so the paper counts
    147 classes and the interpolated variant 146 + 9.8 / 10."""
    counts = [30, 30] + [10] * 749
    assert lts(counts) == pytest.approx(147 / 150.2, rel=1e-12)
    assert lts(counts, variant="interpolated") == pytest.approx(147 / 150.2, rel=1e-12)
    counts = [30, 30] + [10] * 144 + [9] + [10] * 604
    assert lts(counts) == pytest.approx(147 / 150.2, rel=1e-12)
    assert lts(counts, variant="interpolated") == pytest.approx((146 + 9.8 / 10) / 150.2, rel=1e-12)


@pytest.mark.parametrize("counts", [[50, 50], [60, 40], [99, 1], [5, 3, 1, 0, 0], [1, 1, 1, 1, 1]])
def test_few_classes_paper_value_ignores_the_distribution(counts):
    """N <= 1 / k: the largest class alone holds k of the samples, so n_k = 1 and the paper's LTS is
    1 / (k N) for any counts; the interpolated variant still tells the distributions apart
    (hand-computed: need 0.2 * total of the largest class)."""
    n = len(counts)
    assert lts(counts) == pytest.approx(1 / (0.2 * n), rel=1e-12)
    share = 0.2 * sum(counts) / max(counts)
    assert lts(counts, variant="interpolated") == pytest.approx(share / (0.2 * n), rel=1e-12)


def test_unknown_variant_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid: paper, interpolated"):
        lts([1, 2], variant="fractional")


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
    """Brute force over m = 1, 2, ... classes (largest first) until they reach k of all samples (the
    paper's n_k); the interpolated count takes the share of the m-th class still needed. Exact
    rational arithmetic."""
    from fractions import Fraction

    kf = Fraction(k).limit_denominator(10**9)
    ordered = sorted(counts, reverse=True)
    need = kf * sum(ordered)
    m = next(m for m in range(1, len(ordered) + 1) if sum(ordered[:m]) >= need)
    n_k = (m - 1) + (need - sum(ordered[: m - 1])) / ordered[m - 1]
    n = len(counts)
    assert lts(counts, k) == pytest.approx(float(m / (kf * n)))
    assert lts(counts, k, variant="interpolated") == pytest.approx(float(n_k / (kf * n)))
    # the interpolated variant: never above 1, below the paper's value by less than 1 / (k N)
    assert lts(counts, k, variant="interpolated") <= 1.0
    assert 0 <= lts(counts, k) - lts(counts, k, variant="interpolated") < 1 / (k * n) + 1e-12


def test_gini_and_imbalance_hand_computed():
    assert gini([4, 4, 4, 4]) == 0.0
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)  # (N - 1) / N when one class has everything
    assert gini([1, 3]) == pytest.approx(0.25)  # |1-3| * 2 / (2 * 4 * 2)
    assert imbalance_factor([10, 0, 2, 5]) == 5.0  # empty classes ignored
    assert imbalance_factor([3, 3]) == 1.0
    assert math.isnan(imbalance_factor([0, 0]))
