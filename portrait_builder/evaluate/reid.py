"""Re-identification metrics (CMC rank-k and mAP) with pHash-group exclusion, macro or micro.

The standard Market-1501 protocol argsorts every gallery row. Here each query's true matches are
gathered and sorted (few), and the gallery items are binned between them with ``searchsorted``:
the rank of the k-th match is k plus the non-matching, non-ignored items at or before its distance.
Only items no farther than the last true match can change a rank, so when those are few (a
reasonable model) only they are binned. The result equals the standard protocol (ties count against
the query). Queries are processed in chunks, so the query x gallery matrix never has to exist at
once; the chunks run with torch, on the GPU when one is present.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import numpy as np
import torch

log = logging.getLogger(__name__)

ArrayLike = np.ndarray | torch.Tensor | Sequence
DistanceFn = Callable[[int, int], torch.Tensor | np.ndarray]

# Bytes of scratch memory per query x gallery element in one chunk (the distances, their int64 bin
# index and a copy); used to size the chunks from a memory budget.
_BYTES_PER_ELEMENT = 24
# Small chunks keep the CPU passes in cache; a GPU wants larger ones.
_BUDGET_BYTES = {"cpu": 64 * 2**20, "cuda": 1024 * 2**20}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _as_long(values: ArrayLike | None, n: int, name: str) -> np.ndarray:
    """Ids or groups as int64 with null (None / NaN / pandas NA / negative) -> -1."""
    if values is None:
        return np.full(n, -1, dtype=np.int64)
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        import pandas as pd

        if isinstance(values, pd.Series | pd.Index | pd.api.extensions.ExtensionArray):
            values = np.asarray(pd.array(values, dtype="Int64").fillna(-1), dtype=np.int64)
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    arr = np.asarray(values)
    if arr.dtype == object:
        arr = np.array([-1 if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in arr])
    if arr.dtype.kind == "f":
        arr = np.where(np.isnan(arr), -1, arr)
    arr = arr.astype(np.int64, copy=False)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    return np.where(arr < 0, -1, arr)


def _chunk_size(num_gallery: int, chunk_size: int | None, device: torch.device) -> int:
    if chunk_size is not None:
        return max(1, int(chunk_size))
    budget = _BUDGET_BYTES.get(device.type, _BUDGET_BYTES["cpu"])
    return max(1, budget // (max(num_gallery, 1) * _BYTES_PER_ELEMENT))


class _Members:
    """Gallery indices of each key (identity or group), as padded rows gathered per query.

    Built once from the gallery keys (G,) (-1 = none); ``rows(keys)`` gives (B, M) gallery indices,
    -1 padded, where M is the largest member count among ``keys``."""

    def __init__(self, g_keys: np.ndarray, device: torch.device) -> None:
        order = np.argsort(g_keys, kind="stable")
        keys_sorted = g_keys[order]
        first = np.searchsorted(keys_sorted, 0)  # skip the -1 (null) keys
        self.order = torch.from_numpy(order[first:]).to(device)
        uniq, start, count = np.unique(keys_sorted[first:], return_index=True, return_counts=True)
        self.uniq = uniq
        self.start = start
        self.count = count

    def rows(self, keys: np.ndarray) -> torch.Tensor:
        pos = np.searchsorted(self.uniq, keys)
        pos = np.clip(pos, 0, max(len(self.uniq) - 1, 0))
        found = (len(self.uniq) > 0) & (keys >= 0)
        if len(self.uniq):
            found = found & (self.uniq[pos] == keys)
        count = np.where(found, self.count[pos] if len(self.uniq) else 0, 0)
        width = int(count.max()) if len(count) else 0
        dev = self.order.device
        if width == 0:
            return torch.full((len(keys), 0), -1, dtype=torch.long, device=dev)
        cols = torch.arange(width, device=dev)
        start = torch.from_numpy(np.where(found, self.start[pos] if len(self.uniq) else 0, 0)).to(dev)
        valid = cols[None, :] < torch.from_numpy(count).to(dev)[:, None]
        flat = (start[:, None] + cols[None, :]).clamp(max=len(self.order) - 1)
        return torch.where(valid, self.order[flat], torch.full_like(flat, -1))


@contextmanager
def _ranking_threads(device: torch.device):
    """One intra-op thread for the ranking passes on CPU (restored afterwards).

    They are short memory-bound passes over cache-sized chunks; OpenMP fork/join around each costs
    more than it gains, badly so on a shared machine (2 threads were 4x slower than 1 at load 9 on
    the development box). The distance matrix products in ``feature_distances`` keep every thread.
    """
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _gather(d: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """d[row, index] with +inf where index is -1."""
    if index.shape[1] == 0:
        return d.new_full((d.shape[0], 0), float("inf"))
    got = d.gather(1, index.clamp(min=0))
    return got.masked_fill(index < 0, float("inf"))


def _chunk_scores(
    d: torch.Tensor, pos_index: torch.Tensor, excl_index: torch.Tensor, g_groups: torch.Tensor,
    q_groups: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Average precision, first-hit rank and validity of each query of one chunk.

    d: (B, G) distances. pos_index (B, P): gallery items with the query's identity (-1 padded);
    excl_index (B, E): gallery items in the query's pHash group (-1 padded); g_groups (G,),
    q_groups (B,). Only the B x G distances are touched densely, once (``searchsorted`` of every
    gallery item among the query's sorted positives); identities and groups are handled on the small
    (B, P) and (B, E) index sets. Returns ap (B,) float64, first (B,) int64 (1-based rank of the
    first true match among the kept gallery items) and valid (B,) bool (at least one true match).
    """
    b = d.shape[0]
    # A positive in the query's group is ignored like every other member of that group.
    in_group = (g_groups[pos_index.clamp(min=0)] == q_groups[:, None]) & (q_groups[:, None] >= 0)
    pos_index = pos_index.masked_fill(in_group, -1)
    sorted_pos = _gather(d, pos_index).sort(1).values  # (B, P) ascending, +inf padded
    npos = (pos_index >= 0).sum(1)
    pmax = int(npos.max()) if b else 0
    if pmax == 0:
        zeros = torch.zeros(b, dtype=torch.float64, device=d.device)
        return zeros, torch.zeros(b, dtype=torch.long, device=d.device), npos > 0
    sorted_pos = sorted_pos[:, :pmax].contiguous()
    # bin = number of positives strictly closer than the item, so "item at distance <= the k-th
    # positive" is "bin <= k": a negative tied with a positive counts before it (against the query).
    counts = torch.zeros(b, pmax + 1, dtype=torch.long, device=d.device)
    # Only items no farther than the query's last positive can change a rank. When they are few
    # (a reasonable model), bin just those; otherwise bin the whole chunk.
    last = sorted_pos.gather(1, (npos - 1).clamp(min=0)[:, None])
    last = last.masked_fill(npos[:, None] == 0, float("-inf"))
    near = d <= last
    n_near = int(near.sum())
    if n_near * (pmax + 2) <= 2 * d.numel():
        r, c = near.nonzero(as_tuple=True)
        bins = torch.searchsorted(sorted_pos[r], d[r, c][:, None], right=False).squeeze(1)
        counts.index_put_((r, bins), torch.ones_like(bins), accumulate=True)
    else:
        bins = torch.searchsorted(sorted_pos, d.contiguous(), right=False)
        counts.scatter_add_(1, bins, torch.ones(1, 1, dtype=torch.long, device=d.device).expand_as(bins))
    at_or_before = counts.cumsum(1)[:, :pmax]  # every gallery item with distance <= k-th positive
    positives_before = torch.searchsorted(sorted_pos, sorted_pos, right=True)
    excluded = _gather(d, excl_index).sort(1).values.contiguous()
    excluded_before = (torch.searchsorted(excluded, sorted_pos, right=True) if excluded.shape[1]
                       else torch.zeros_like(positives_before))
    negatives_before = at_or_before - positives_before - excluded_before
    k = torch.arange(1, pmax + 1, device=d.device, dtype=torch.float64)
    rank = k[None, :] + negatives_before.to(torch.float64)  # 1-based rank of the k-th positive
    in_row = k[None, :] <= npos[:, None]
    ap = torch.where(in_row, k[None, :] / rank, torch.zeros((), dtype=torch.float64, device=d.device)).sum(1)
    ap = ap / npos.clamp(min=1).to(torch.float64)
    first = 1 + negatives_before[:, 0]
    return ap, first, npos > 0


def reid_metrics(
    dist: ArrayLike | DistanceFn,
    q_ids: ArrayLike,
    g_ids: ArrayLike,
    q_groups: ArrayLike | None = None,
    g_groups: ArrayLike | None = None,
    macro: bool = True,
    *,
    ranks: Sequence[int] = (1, 5, 10),
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
    show_progress: bool = False,
) -> dict[str, float]:
    """CMC rank-k and mAP of a query set against a gallery.

    dist: (Q, G) distances, smaller is closer (NumPy array or tensor), or a callable
    ``dist(start, stop) -> (stop - start, G)`` giving the rows of queries ``start:stop``, so the whole
    matrix never has to exist. q_ids (Q,), g_ids (G,): person ids; null/negative ids never match.
    q_groups (Q,), g_groups (G,): pHash groups or None; a gallery item is ignored for a query when both
    have the same non-null group (the Market-1501 same-camera rule, replaced by groups).
    macro=True averages over the queries of each identity first, then over identities (the paper's
    Macro CMC/mAP); macro=False is the plain Market-1501 average over queries. Queries without any
    true match in the (non-ignored) gallery are skipped, as in Market-1501.
    Returns {"rank1", "rank5", "rank10", "mAP"} as fractions in [0, 1] (NaN when no query is valid).
    """
    dev = torch.device(device) if device is not None else default_device()
    q_ids_np = np.asarray(_as_long(q_ids, len(q_ids), "q_ids"))
    num_q = len(q_ids_np)
    num_g = len(g_ids)
    g_ids_np = _as_long(g_ids, num_g, "g_ids")
    q_groups_np = _as_long(q_groups, num_q, "q_groups")
    g_groups_np = _as_long(g_groups, num_g, "g_groups")
    if callable(dist):
        rows = dist
    else:
        full = dist if isinstance(dist, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(dist))
        if tuple(full.shape) != (num_q, num_g):
            raise ValueError(f"dist must have shape ({num_q}, {num_g}), got {tuple(full.shape)}")

        def rows(start: int, stop: int) -> torch.Tensor:
            return full[start:stop]

    by_id = _Members(g_ids_np, dev)
    by_group = _Members(g_groups_np, dev)
    gg = torch.from_numpy(g_groups_np).to(dev)
    step = _chunk_size(num_g, chunk_size, dev)
    aps, firsts, valids = [], [], []
    starts = range(0, num_q, step)
    if show_progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="re-id ranking", unit="chunk")
    for start in starts:
        stop = min(start + step, num_q)
        d = torch.as_tensor(rows(start, stop)).to(dev)
        if d.dtype not in (torch.float32, torch.float64):
            d = d.float()
        qg = torch.from_numpy(q_groups_np[start:stop]).to(dev)
        with _ranking_threads(dev):
            ap, first, valid = _chunk_scores(d, by_id.rows(q_ids_np[start:stop]),
                                             by_group.rows(q_groups_np[start:stop]), gg, qg)
        aps.append(ap.cpu())
        firsts.append(first.cpu())
        valids.append(valid.cpu())
    if not aps:
        return {f"rank{r}": float("nan") for r in ranks} | {"mAP": float("nan")}
    ap = torch.cat(aps).numpy()
    first = torch.cat(firsts).numpy()
    valid = torch.cat(valids).numpy()
    if not valid.any():
        log.warning("no query has a true match in the gallery; re-id metrics are undefined")
        return {f"rank{r}": float("nan") for r in ranks} | {"mAP": float("nan")}
    scores = {f"rank{r}": (first <= r).astype(np.float64) for r in ranks} | {"mAP": ap}
    if not macro:
        return {key: float(val[valid].mean()) for key, val in scores.items()}
    ids = q_ids_np[valid]
    uniq, inverse = np.unique(ids, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(uniq)).astype(np.float64)
    out = {}
    for key, val in scores.items():
        per_id = np.bincount(inverse, weights=val[valid], minlength=len(uniq)) / counts
        out[key] = float(per_id.mean())
    return out


def _pairwise(q: torch.Tensor, g: torch.Tensor, g_sq: torch.Tensor | None, metric: str) -> torch.Tensor:
    if metric == "cosine":
        return 1.0 - q @ g.T
    # Squared Euclidean ranks exactly like Euclidean and avoids a sqrt; clamp the rounding negatives.
    q_sq = (q * q).sum(1, keepdim=True)
    return (q_sq + g_sq[None, :] - 2.0 * (q @ g.T)).clamp_(min=0)


METRICS = ("euclidean", "cosine")


def feature_distances(
    qf: ArrayLike, gf: ArrayLike, metric: str = "euclidean", device: str | torch.device | None = None
) -> DistanceFn:
    """A chunk callable ``rows(start, stop)`` of query-to-gallery distances for :func:`reid_metrics`.

    qf (Q, D), gf (G, D) features. metric "euclidean" gives squared Euclidean distances (same order
    as Euclidean), "cosine" gives 1 - cosine similarity of the L2-normalised features.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown distance metric {metric!r}; valid: {', '.join(METRICS)}")
    dev = torch.device(device) if device is not None else default_device()
    q = torch.as_tensor(qf).to(dev)
    g = torch.as_tensor(gf).to(dev)
    if not q.is_floating_point():
        q, g = q.float(), g.float()
    if metric == "cosine":
        q = torch.nn.functional.normalize(q, dim=1)
        g = torch.nn.functional.normalize(g, dim=1)
        g_sq = None
    else:
        g_sq = (g * g).sum(1)

    def rows(start: int, stop: int) -> torch.Tensor:
        return _pairwise(q[start:stop], g, g_sq, metric)

    return rows


def reid_metrics_from_features(
    qf: ArrayLike,
    gf: ArrayLike,
    q_ids: ArrayLike,
    g_ids: ArrayLike,
    q_groups: ArrayLike | None = None,
    g_groups: ArrayLike | None = None,
    macro: bool = True,
    *,
    metric: str = "euclidean",
    ranks: Sequence[int] = (1, 5, 10),
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
    show_progress: bool = False,
) -> dict[str, float]:
    """:func:`reid_metrics` on features qf (Q, D) and gf (G, D); distances are computed chunk by chunk."""
    rows = feature_distances(qf, gf, metric=metric, device=device)
    return reid_metrics(
        rows, q_ids, g_ids, q_groups, g_groups, macro,
        ranks=ranks, chunk_size=chunk_size, device=device, show_progress=show_progress,
    )
