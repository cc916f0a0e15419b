"""Macro F1 for single-label and multi-label classification (the paper's per-attribute score)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _f1_per_class(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    # F1 = 2TP / (2TP + FP + FN); a class with no true and no predicted sample scores 0, as
    # scikit-learn does with its default zero_division.
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros(len(tp), dtype=np.float64), where=denom > 0)


def macro_f1(
    y_true: Sequence | np.ndarray,
    y_pred: Sequence | np.ndarray,
    multilabel: bool = False,
    labels: Sequence | None = None,
) -> float:
    """Unweighted mean of the per-class F1 scores.

    Single-label: y_true, y_pred (N,) class labels (ints or strings); the classes are ``labels`` or,
    as in ``sklearn.metrics.f1_score(average='macro')``, the sorted union of both arrays.
    Multi-label: y_true, y_pred (N, C) 0/1 indicator arrays; every one of the C columns counts.
    Returns NaN for empty input.
    """
    if multilabel:
        t = np.asarray(y_true).astype(bool)
        p = np.asarray(y_pred).astype(bool)
        if t.shape != p.shape or t.ndim != 2:
            raise ValueError(f"multi-label y_true and y_pred must both be (N, C); got {t.shape} and {p.shape}")
        if t.shape[0] == 0:
            return float("nan")
        tp = (t & p).sum(0)
        fp = (~t & p).sum(0)
        fn = (t & ~p).sum(0)
        return float(_f1_per_class(tp, fp, fn).mean())
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true and y_pred must both be (N,); got {t.shape} and {p.shape}")
    if t.size == 0:
        return float("nan")
    classes = np.asarray(labels) if labels is not None else np.union1d(t, p)
    tc = t[:, None] == classes[None, :]
    pc = p[:, None] == classes[None, :]
    tp = (tc & pc).sum(0)
    fp = (~tc & pc).sum(0)
    fn = (tc & ~pc).sum(0)
    return float(_f1_per_class(tp, fp, fn).mean())
