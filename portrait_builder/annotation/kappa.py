"""Cohen's kappa between two annotators: a pure function over two equally long label sequences."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two raters who labelled the same N items.

    ``a`` and ``b`` are length-N sequences of category names (any hashable). Returns
    ``(p_o - p_e) / (1 - p_e)`` with ``p_o`` the observed agreement and ``p_e`` the agreement
    expected from each rater's marginal frequencies; NaN when ``p_e == 1`` (both raters used one
    and the same category throughout), as :func:`sklearn.metrics.cohen_kappa_score` does.
    Multi-label values are compared as whole sets (their stored ``a|b`` text), i.e. exact-match agreement.
    """
    if len(a) != len(b):
        raise ValueError(f"label sequences differ in length: {len(a)} != {len(b)}")
    if len(a) == 0:
        return float("nan")
    categories = {c: i for i, c in enumerate(sorted(set(a) | set(b), key=str))}
    ia = np.fromiter((categories[x] for x in a), dtype=np.int64, count=len(a))
    ib = np.fromiter((categories[x] for x in b), dtype=np.int64, count=len(b))
    k = len(categories)
    confusion = np.zeros((k, k), dtype=np.float64)
    np.add.at(confusion, (ia, ib), 1.0)
    n = confusion.sum()
    p_o = np.trace(confusion) / n
    p_e = float((confusion.sum(axis=1) / n) @ (confusion.sum(axis=0) / n))
    if p_e == 1.0:
        return float("nan")
    return float((p_o - p_e) / (1.0 - p_e))
