"""Long-tail measures over per-class sample counts: LTS_k (the paper's Eq. 1; docs/dataset.md), Gini, imbalance factor."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np


def _counts(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(list(counts) if not isinstance(counts, np.ndarray) else counts)
    if arr.ndim != 1:
        raise ValueError("counts must be one-dimensional (one count per class)")
    if arr.size and (arr < 0).any():
        raise ValueError("counts must be non-negative")
    return arr


LTS_VARIANTS = ("paper", "interpolated")


def lts(counts: Sequence[int] | np.ndarray, k: float = 0.2, *, variant: str = "paper") -> float:
    """Long Tail Score LTS_k = n_k / (k * N): N classes (empty ones included), n_k the number of
    classes, largest first, that it takes to hold a fraction ``k`` of all samples.

    Near 0: a few classes hold most samples; 1.0: uniform.

    ``variant="paper"`` (default) is the paper's Eq. 1: n_k is the smallest whole number of classes
    whose samples reach ``k`` of all samples. The paper's Table 3 is computed this way (Market-1501
    train / query / gallery: 0.400 / 0.766 / 0.446). With few classes it is coarse and can exceed 1
    (two balanced genders: ceil(0.4) / 0.4 = 2.5).

    ``variant="interpolated"`` counts the class that crosses ``k`` only in part, by the share of it
    still needed (linear interpolation of the cumulative share): a uniform distribution gives exactly
    1.0 for any N, no distribution scores above 1, and it is below the paper's value by less than
    1 / (k N). It suits attributes with a handful of classes; releases show it beside the paper's.

    Exact (rational) arithmetic for integer counts. NaN when there are no samples.
    """
    if variant not in LTS_VARIANTS:
        raise ValueError(f"unknown LTS variant {variant!r}; valid: {', '.join(LTS_VARIANTS)}")
    if not 0.0 < k < 1.0:
        raise ValueError(f"k must be in (0, 1), got {k}")
    arr = _counts(counts)
    n_classes = arr.size
    total = arr.sum()
    if n_classes == 0 or total <= 0:
        return float("nan")
    ordered = np.sort(arr)[::-1]
    cum = np.cumsum(ordered)
    # Exact comparison cum >= k * total: k as a fraction avoids 0.2 * 10 = 2.0000000000000004 style misses.
    frac = Fraction(k).limit_denominator(10**9)
    if np.issubdtype(arr.dtype, np.integer):
        need = frac * int(total)
        m = next(i for i, c in enumerate(cum.tolist()) if c >= need) + 1
        if variant == "paper":
            return float(Fraction(m) / (frac * n_classes))
        before = int(cum[m - 2]) if m > 1 else 0
        n_k = (m - 1) + (need - before) / int(ordered[m - 1])
        return float(n_k / (frac * n_classes))
    need = float(frac) * float(total)
    m = int(np.argmax(cum >= need * (1 - 1e-12))) + 1
    if variant == "paper":
        return m / (k * n_classes)
    before = float(cum[m - 2]) if m > 1 else 0.0
    return min(((m - 1) + (need - before) / float(ordered[m - 1])) / (k * n_classes), 1.0)  # <= 1 but for rounding


def gini(counts: Sequence[float] | np.ndarray) -> float:
    """Gini coefficient of the class sizes: 0 when uniform, towards 1 when one class holds everything.

    G = sum_i sum_j |x_i - x_j| / (2 N^2 mean), computed from the sorted counts in O(N log N).
    """
    arr = np.sort(_counts(counts).astype(np.float64))
    n = arr.size
    if n == 0 or arr.sum() == 0:
        return float("nan")
    index = np.arange(1, n + 1)
    return float((2.0 * (index * arr).sum()) / (n * arr.sum()) - (n + 1.0) / n)


def imbalance_factor(counts: Sequence[float] | np.ndarray) -> float:
    """Largest class size / smallest non-empty class size (1.0 when uniform; NaN without samples)."""
    arr = _counts(counts)
    nz = arr[arr > 0]
    if nz.size == 0:
        return float("nan")
    return float(nz.max() / nz.min())
