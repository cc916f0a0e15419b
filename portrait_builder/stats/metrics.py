"""Long-tail measures over per-class sample counts: LTS_k (DESIGN.md section 4), Gini, imbalance factor."""

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


def lts(counts: Sequence[int] | np.ndarray, k: float = 0.2) -> float:
    """Long Tail Score: (smallest number of classes whose samples reach a fraction ``k`` of all samples,
    taking classes largest first) / (k * N), N the number of classes (empty classes included).

    Near 0: a few classes hold most samples; 1.0 for a uniform distribution whenever ``k * N`` is an
    integer (otherwise ceil(k N) / (k N), slightly above 1). NaN when there are no samples.
    """
    if not 0.0 < k < 1.0:
        raise ValueError(f"k must be in (0, 1), got {k}")
    arr = _counts(counts)
    n_classes = arr.size
    total = arr.sum()
    if n_classes == 0 or total <= 0:
        return float("nan")
    cum = np.cumsum(np.sort(arr)[::-1])
    # Exact comparison cum >= k * total: k as a fraction avoids 0.2 * 10 = 2.0000000000000004 style misses.
    frac = Fraction(k).limit_denominator(10**9)
    if np.issubdtype(arr.dtype, np.integer):
        reach = np.array([int(c) * frac.denominator >= frac.numerator * int(total) for c in cum])
    else:
        reach = cum >= float(frac) * total * (1 - 1e-12)
    m = int(np.argmax(reach)) + 1
    return m / (k * n_classes)


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
