"""The straightforward NumPy Market-1501 protocol, kept as the reference that ``reid_metrics`` is
tested and benchmarked against (tests/baseline, benchmarks/evaluate.py).

It is torchreid's ``eval_market1501`` logic with "same pHash group (non-null)" in place of "same
person and camera": a full argsort of every distance row, then a loop over queries. Micro averages
only; quadratic memory, so never use it on real test sets.
"""

from __future__ import annotations

import numpy as np


def market1501_reference(distmat, q_pids, g_pids, q_groups, g_groups, max_rank: int = 10,
                         sort_kind: str = "stable") -> dict[str, float]:
    """Micro rank-1/5/10 and mAP. distmat: (Q, G), smaller is closer; groups < 0 mean "no group".

    ``sort_kind="stable"`` breaks distance ties by gallery order (what the tests compare exactly);
    the benchmark passes NumPy's default "quicksort", as torchreid does.
    """
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_groups, g_groups = np.asarray(q_groups), np.asarray(g_groups)
    indices = np.argsort(distmat, axis=1, kind=sort_kind)
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap = [], []
    for q_idx in range(distmat.shape[0]):
        order = indices[q_idx]
        keep = np.invert((g_groups[order] == q_groups[q_idx]) & (q_groups[q_idx] >= 0))
        raw_cmc = matches[q_idx][keep]
        if not np.any(raw_cmc):  # no gallery match outside the query's group: the query does not count
            continue
        cmc = raw_cmc.cumsum()
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        precision_at_hits = raw_cmc.cumsum() / np.arange(1, len(raw_cmc) + 1) * raw_cmc
        all_ap.append(precision_at_hits.sum() / raw_cmc.sum())
    cmc = np.asarray(all_cmc).astype(np.float64).sum(0) / len(all_cmc)
    return {"rank1": float(cmc[0]), "rank5": float(cmc[4]), "rank10": float(cmc[9]), "mAP": float(np.mean(all_ap))}
