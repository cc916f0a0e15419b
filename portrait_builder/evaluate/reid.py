"""Re-identification metrics (CMC rank-k and mAP) with pHash-group exclusion, macro or micro.

Equal to the standard Market-1501 protocol (``market1501_reference`` in
``portrait_builder.testing.reid_reference``: a stable sort of each distance row, so distance ties are
broken by gallery order) without sorting any gallery row.
The rank of a query's k-th true match is k plus the kept non-matching items before it; those counts
come from one histogram pass per row: each distance falls into one of ``K`` equal-width buckets
spanning the query's true matches, a bucket without a true match tells its items' place exactly,
and only the few items sharing a bucket with a true match are compared one by one (with the
reference's gallery-order tie rule). Work is linear in the gallery size.

Distances are computed in blocks of queries (a memory budget's worth of rows against the whole
gallery, one BLAS product per block, so the gallery features are read a few times, not once per
few queries); rows are ranked in small cache-sized slices, on every available CPU.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from portrait_builder.cpus import available_cpus

log = logging.getLogger(__name__)

ArrayLike = np.ndarray | torch.Tensor | Sequence
DistanceFn = Callable[[int, int], torch.Tensor | np.ndarray]

# Memory for one block of distance rows (queries x gallery). Larger blocks read the gallery fewer
# times; 256 MiB is ~780 queries x 86,006 gallery items (the Portrait250K test set in 16 blocks).
_BLOCK_BYTES = {"cpu": 256 * 2**20, "cuda": 1024 * 2**20}
# Distances ranked together on one CPU thread (a slice of whole rows): large enough that the ~100
# small tensor operations per slice cost little, small enough that its scratch (~17 bytes per
# distance) stays in the last-level cache.
_SLICE_ELEMENTS = 1 << 21
# Histogram buckets per row, per true match: more buckets leave fewer items to compare one by one
# (about 1/_BUCKETS_PER_MATCH of those up to the last match) at the price of a larger histogram.
_BUCKETS_PER_MATCH = 64
_MIN_BUCKETS = 1024
# Bucket numbers of a slice (rows x buckets) must be exact integers in float32.
_EXACT_INTEGERS = 2**24


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


def _block_rows(num_gallery: int, chunk_size: int | None, device: torch.device, itemsize: int) -> int:
    if chunk_size is not None:
        return max(1, int(chunk_size))
    budget = _BLOCK_BYTES.get(device.type, _BLOCK_BYTES["cpu"])
    return max(1, budget // (max(num_gallery, 1) * itemsize))


class _Members:
    """Gallery indices of each key (identity or group), as padded rows gathered per query.

    Built once from the gallery keys (G,) (-1 = none); ``rows(keys)`` gives (B, M) gallery indices,
    ascending in each row, -1 padded, where M is the largest member count among ``keys``."""

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
def _single_intraop_thread(device: torch.device):
    """One intra-op thread while the ranking runs (restored afterwards).

    The ranking slices run side by side on a pool of Python threads, one per CPU; each slice's
    passes are short and cache-sized, so splitting each of them again across OpenMP threads would
    only add fork/join overhead and oversubscribe the machine.
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


class _Scratch(threading.local):
    """Per-thread (R, G) buffers, reused from slice to slice: a fresh large tensor per pass costs
    more in page faults than the pass itself."""

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        buf = self.__dict__.get(name)
        numel = int(np.prod(shape))
        if buf is None or buf.dtype != dtype or buf.device != device or buf.numel() < numel:
            buf = torch.empty(numel, dtype=dtype, device=device)
            self.__dict__[name] = buf
        return buf[:numel].view(shape)


_scratch = _Scratch()


def _buckets(x: torch.Tensor, lo: torch.Tensor, scale: torch.Tensor, k: int, row_start: torch.Tensor,
             out: torch.Tensor) -> torch.Tensor:
    """Bucket numbers (as floats in ``out``) of each row's values: ``row_start`` below ``lo``, then k
    equal buckets over [lo, lo + (k - 1) / scale], ``row_start + k + 1`` beyond and for NaN (after
    every number, as NumPy's argsort in the reference places it). ``row_start`` (R, 1) numbers the
    rows' buckets apart, so one ``bincount`` histograms a whole slice.

    A chain of correctly rounded monotone operations on exactly representable bounds: d1 < d2 never
    puts d2 in a lower bucket, and equal values land in the same bucket, whichever tensor holds them."""
    torch.sub(x, lo, out=out)
    out.mul_(scale)
    out.clamp_(-1.0, float(k))
    return out.nan_to_num_(nan=float(k)).add_(row_start)


def _lower_bound(values: torch.Tensor, flat: torch.Tensor, offset: torch.Tensor, lo: torch.Tensor,
                 hi: torch.Tensor, width: int, strict: bool) -> torch.Tensor:
    """For each value, the first index i in [lo, hi) with ``flat[offset + i]`` not below it (strict:
    not < value; else not <= value), or hi; each row of ``flat`` (``width`` long, from ``offset``)
    ascending. A vectorised binary search over the few true matches that share a bucket."""
    lo, hi = lo.clone(), hi.clone()
    steps = int((hi - lo).max()).bit_length() if len(lo) else 0
    for _ in range(steps):
        active = lo < hi
        mid = (lo + hi) // 2
        probe = flat[offset + mid.clamp(max=width - 1)]
        below = probe < values if strict else probe <= values
        lo = torch.where(active & below, mid + 1, lo)
        hi = torch.where(active & ~below, mid, hi)
    return lo


def _slice_scores(
    d: torch.Tensor, pos_index: torch.Tensor, excl_index: torch.Tensor, q_ids: torch.Tensor,
    q_groups: torch.Tensor, g_ids: torch.Tensor, g_groups: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Average precision, first-hit rank and validity of each query (row) of one slice.

    d: (R, G) distances. pos_index (R, P): gallery items with the query's identity, ascending, -1
    padded; excl_index (R, E): gallery items in the query's pHash group (-1 padded); q_ids, q_groups
    (R,); g_ids, g_groups (G,). Returns ap (R,) float64, first (R,) int64 (1-based rank of the first
    true match among the kept gallery items) and valid (R,) bool (at least one true match kept).

    Ranks follow the reference's stable sort: gallery item g comes before true match p when
    d[g] < d[p], or d[g] == d[p] and g < p. Counting is "at or before" (d[g] <= d[p]) everywhere,
    and the few non-matching kept items tied with a true match that comes first are taken off.
    """
    rows, num_g = d.shape
    dev = d.device
    # A true match in the query's group is ignored like every other member of that group.
    in_group = (g_groups[pos_index.clamp(min=0)] == q_groups[:, None]) & (q_groups[:, None] >= 0)
    pos_index = pos_index.masked_fill(in_group, -1)
    npos = (pos_index >= 0).sum(1)
    pmax = int(npos.max()) if rows else 0
    if pmax == 0:
        zeros = torch.zeros(rows, dtype=torch.float64, device=dev)
        return zeros, torch.zeros(rows, dtype=torch.long, device=dev), npos > 0
    # True matches by (distance, gallery index): a stable sort of index-ascending rows.
    pos_d, order = torch.sort(_gather(d, pos_index), dim=1, stable=True)
    pos_d = pos_d[:, :pmax].contiguous()
    pos_g = pos_index.gather(1, order)[:, :pmax].contiguous()
    k_cols = torch.arange(pmax, device=dev)
    pos_live = k_cols[None, :] < npos[:, None]
    if not bool(torch.isfinite(pos_d[pos_live]).all()):
        raise ValueError("the distance of a query to a true match is not finite (NaN or infinity)")
    has = npos > 0

    # Buckets spanning [first match, last match] of each row, numbered apart row by row; their
    # numbers must stay exact in the distances' float type: fewer rows at a time when too many.
    num_buckets = min(max(_MIN_BUCKETS, _BUCKETS_PER_MATCH * pmax), _EXACT_INTEGERS // 4)
    nb = num_buckets + 2
    if rows > 1 and rows * nb > _EXACT_INTEGERS:
        half = rows // 2
        parts = [_slice_scores(d[a:b], pos_index[a:b], excl_index[a:b], q_ids[a:b], q_groups[a:b], g_ids, g_groups)
                 for a, b in ((0, half), (half, rows))]
        return tuple(torch.cat(x) for x in zip(*parts, strict=True))
    first_d = pos_d[:, :1]
    last_d = pos_d.gather(1, (npos - 1).clamp(min=0)[:, None])
    lo = torch.where(has[:, None], first_d, torch.zeros_like(first_d))
    width = torch.where(has[:, None], last_d - first_d, torch.ones_like(first_d))
    tiny = 1e-30 if d.dtype == torch.float32 else 1e-300  # keeps the scale finite
    scale = (num_buckets - 1) / width.clamp(min=tiny)
    row_start = (1 + torch.arange(rows, device=dev) * nb).to(d.dtype)[:, None]
    pos_b = _buckets(pos_d, lo, scale, num_buckets, row_start, torch.empty_like(pos_d)).to(torch.long)
    per_bucket = torch.zeros(rows * nb, dtype=torch.long, device=dev)
    per_bucket.index_add_(0, pos_b[pos_live], torch.ones_like(pos_b[pos_live]))
    flagged = per_bucket > 0  # buckets holding a true match
    before = (per_bucket.view(rows, nb).cumsum(1) - per_bucket.view(rows, nb))  # matches strictly closer

    fbuf = _scratch.get("bucket_f", (rows, num_g), d.dtype, dev)
    bucket = _scratch.get("bucket_i", (rows * num_g,), torch.int32, dev)
    bucket.copy_(_buckets(d, lo, scale, num_buckets, row_start, fbuf).view(-1))  # truncation = floor: >= 0
    hist = torch.bincount(bucket, minlength=rows * nb).view(rows, nb)
    # counts[r, b]: gallery items with exactly b true matches strictly closer.
    counts = torch.zeros(rows, pmax + 1, dtype=torch.long, device=dev)
    counts.scatter_add_(1, before, hist.masked_fill(flagged.view(rows, nb), 0))

    ties = torch.zeros(rows, pmax, dtype=torch.long, device=dev)
    near = _scratch.get("near", (rows * num_g,), torch.uint8, dev)
    torch.index_select(flagged.to(torch.uint8), 0, bucket, out=near)
    where = near.nonzero().squeeze(1)  # items sharing a bucket with a true match
    if len(where):
        value = d.reshape(-1).index_select(0, where)
        r = where // num_g
        at = bucket.index_select(0, where).long()
        start = before.view(-1).index_select(0, at)
        stop = start + per_bucket.index_select(0, at)
        offset = r * pmax
        flat_d = pos_d.view(-1)
        closer = _lower_bound(value, flat_d, offset, start, stop, pmax, strict=True)
        counts += torch.bincount(r * (pmax + 1) + closer, minlength=rows * (pmax + 1)).view(rows, pmax + 1)
        # A kept non-matching item at exactly a true match's distance, after it in gallery order,
        # was counted before that match: take it off (the reference's stable tie rule).
        tied = (closer < stop) & (flat_d[offset + closer.clamp(max=pmax - 1)] == value)
        if bool(tied.any()):
            r, c, value, closer, stop = r[tied], where[tied] % num_g, value[tied], closer[tied], stop[tied]
            kept_other = (g_ids[c] != q_ids[r]) & ~((g_groups[c] == q_groups[r]) & (q_groups[r] >= 0))
            r, c, value, closer, stop = r[kept_other], c[kept_other], value[kept_other], closer[kept_other], stop[kept_other]
            offset = r * pmax
            at_most = _lower_bound(value, flat_d, offset, closer, stop, pmax, strict=False)
            flat_g = pos_g.view(-1)
            for m in range(int((at_most - closer).max()) if len(r) else 0):
                k = closer + m
                hit = (k < at_most) & (flat_g[offset + k.clamp(max=pmax - 1)] < c)
                ties.view(-1).index_add_(0, (offset + k)[hit], torch.ones_like(k[hit]))

    at_or_before = counts.cumsum(1)[:, :pmax]  # every gallery item with distance <= k-th match
    matches_before = torch.searchsorted(pos_d, pos_d, right=True)
    excluded = _gather(d, excl_index).nan_to_num(nan=float("inf")).sort(1).values.contiguous()
    excluded_before = (torch.searchsorted(excluded, pos_d, right=True) if excluded.shape[1]
                       else torch.zeros_like(matches_before))
    others_before = at_or_before - matches_before - excluded_before - ties
    k = (k_cols + 1).to(torch.float64)
    rank = k[None, :] + others_before.to(torch.float64)  # 1-based rank of the k-th true match
    ap = torch.where(pos_live, k[None, :] / rank, torch.zeros((), dtype=torch.float64, device=dev)).sum(1)
    ap = ap / npos.clamp(min=1).to(torch.float64)
    first = 1 + others_before[:, 0]
    return ap, first, has


@dataclass(frozen=True)
class QueryRanks:
    """Per-query results of one ranking pass, from which both averages are read.

    q_ids (Q,) int64; ap (Q,) average precision; first (Q,) 1-based rank of the first true match
    among the kept gallery items; valid (Q,) whether the query has a true match (others are skipped,
    as in Market-1501)."""

    q_ids: np.ndarray
    ap: np.ndarray
    first: np.ndarray
    valid: np.ndarray

    def metrics(self, macro: bool = True, ranks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
        """{"rank1", "rank5", "rank10", "mAP"} in [0, 1] (NaN when no query is valid). macro=True
        averages over the queries of each identity first, then over identities (the paper's Macro
        CMC/mAP); macro=False is the plain Market-1501 average over queries."""
        if not self.valid.any():
            log.warning("no query has a true match in the gallery; re-id metrics are undefined")
            return {f"rank{r}": float("nan") for r in ranks} | {"mAP": float("nan")}
        valid = self.valid
        scores = {f"rank{r}": (self.first <= r).astype(np.float64) for r in ranks} | {"mAP": self.ap}
        if not macro:
            return {key: float(val[valid].mean()) for key, val in scores.items()}
        uniq, inverse = np.unique(self.q_ids[valid], return_inverse=True)
        counts = np.bincount(inverse, minlength=len(uniq)).astype(np.float64)
        out = {}
        for key, val in scores.items():
            per_id = np.bincount(inverse, weights=val[valid], minlength=len(uniq)) / counts
            out[key] = float(per_id.mean())
        return out


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
    workers: int | None = None,
) -> dict[str, float]:
    """CMC rank-k and mAP of a query set against a gallery.

    dist: (Q, G) distances, smaller is closer (NumPy array or tensor), or a callable
    ``dist(start, stop) -> (stop - start, G)`` giving the rows of queries ``start:stop``, so the whole
    matrix never has to exist. q_ids (Q,), g_ids (G,): person ids; null/negative ids never match.
    q_groups (Q,), g_groups (G,): pHash groups or None; a gallery item is ignored for a query when both
    have the same non-null group (the Market-1501 same-camera rule, replaced by groups).
    macro=True averages over the queries of each identity first, then over identities (the paper's
    Macro CMC/mAP); macro=False is the plain Market-1501 average over queries. Queries without any
    true match in the (non-ignored) gallery are skipped, as in Market-1501. Distance ties are broken
    by gallery order, as a stable sort of each row would.
    chunk_size: queries per block of rows (default: a 256 MiB block on CPU); workers: CPU threads
    for the ranking (default: the CPUs this process may use).
    Returns {"rank1", "rank5", "rank10", "mAP"} as fractions in [0, 1] (NaN when no query is valid).
    Both averages from one pass: :func:`query_ranks` then ``.metrics(macro)``.
    """
    return query_ranks(dist, q_ids, g_ids, q_groups, g_groups, chunk_size=chunk_size, device=device,
                       show_progress=show_progress, workers=workers).metrics(macro, ranks)


def query_ranks(
    dist: ArrayLike | DistanceFn,
    q_ids: ArrayLike,
    g_ids: ArrayLike,
    q_groups: ArrayLike | None = None,
    g_groups: ArrayLike | None = None,
    *,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
    show_progress: bool = False,
    workers: int | None = None,
) -> QueryRanks:
    """The ranking pass of :func:`reid_metrics` (same arguments): per-query AP and first-hit rank."""
    dev = torch.device(device) if device is not None else default_device()
    q_ids_np = np.asarray(_as_long(q_ids, len(q_ids), "q_ids"))
    num_q = len(q_ids_np)
    num_g = len(g_ids)
    g_ids_np = _as_long(g_ids, num_g, "g_ids")
    q_groups_np = _as_long(q_groups, num_q, "q_groups")
    g_groups_np = _as_long(g_groups, num_g, "g_groups")
    itemsize = 4
    finish = None
    if isinstance(dist, _FeatureRows):
        rows, finish = dist.raw, dist.finish
        itemsize = dist.q.element_size()
    elif callable(dist):
        rows = dist
    else:
        full = dist if isinstance(dist, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(dist))
        if tuple(full.shape) != (num_q, num_g):
            raise ValueError(f"dist must have shape ({num_q}, {num_g}), got {tuple(full.shape)}")
        itemsize = full.element_size()

        def rows(start: int, stop: int) -> torch.Tensor:
            return full[start:stop]

    by_id = _Members(g_ids_np, dev)
    by_group = _Members(g_groups_np, dev)
    gi = torch.from_numpy(g_ids_np).to(dev)
    gg = torch.from_numpy(g_groups_np).to(dev)
    step = _block_rows(num_g, chunk_size, dev, itemsize)
    threads = (workers or available_cpus()) if dev.type == "cpu" else 1
    slice_rows = max(1, _SLICE_ELEMENTS // max(num_g, 1)) if dev.type == "cpu" else step

    def score(d: torch.Tensor, start: int, stop: int):
        if finish is not None:
            d = finish(d, start, stop)
        return _slice_scores(d, by_id.rows(q_ids_np[start:stop]), by_group.rows(q_groups_np[start:stop]),
                             torch.from_numpy(q_ids_np[start:stop]).to(dev),
                             torch.from_numpy(q_groups_np[start:stop]).to(dev), gi, gg)

    aps, firsts, valids = [], [], []
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=num_q, desc="re-id ranking", unit="query")
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        for start in range(0, num_q, step):
            stop = min(start + step, num_q)
            d = torch.as_tensor(rows(start, stop)).to(dev)
            if d.dtype not in (torch.float32, torch.float64):
                d = d.float()
            bounds = [(s, min(s + slice_rows, stop)) for s in range(start, stop, slice_rows)]
            with _single_intraop_thread(dev):
                tasks = [(d[s - start:e - start], s, e) for s, e in bounds]
                results = [score(*t) for t in tasks] if pool is None else list(pool.map(score, *zip(*tasks, strict=True)))
            for ap, first, valid in results:
                aps.append(ap.cpu())
                firsts.append(first.cpu())
                valids.append(valid.cpu())
            del d, tasks  # the slices are views of the block: free it before the next product
            if bar is not None:
                bar.update(stop - start)
    finally:
        if pool is not None:
            pool.shutdown()
        if bar is not None:
            bar.close()
    if not aps:
        empty = np.zeros(0)
        return QueryRanks(q_ids_np, empty, empty.astype(np.int64), empty.astype(bool))
    return QueryRanks(q_ids_np, torch.cat(aps).numpy(), torch.cat(firsts).numpy(), torch.cat(valids).numpy())


METRICS = ("euclidean", "cosine")


def feature_distances(
    qf: ArrayLike, gf: ArrayLike, metric: str = "euclidean", device: str | torch.device | None = None
) -> DistanceFn:
    """A block callable ``rows(start, stop)`` of query-to-gallery distances for :func:`reid_metrics`.

    qf (Q, D), gf (G, D) finite features (ValueError otherwise). metric "euclidean" gives squared Euclidean distances (same
    order as Euclidean), "cosine" gives 1 - cosine similarity of the L2-normalised features. On the
    CPU the products go through NumPy's BLAS (OpenBLAS, every core; faster than torch's CPU matmul
    on the AMD EPYC development box), on a GPU through torch.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown distance metric {metric!r}; valid: {', '.join(METRICS)}")
    dev = torch.device(device) if device is not None else default_device()
    q = torch.as_tensor(qf).to(dev)
    g = torch.as_tensor(gf).to(dev)
    if q.dtype not in (torch.float32, torch.float64) or g.dtype != q.dtype:
        q, g = q.float(), g.float()
    if metric == "cosine":
        q = torch.nn.functional.normalize(q, dim=1)
        g = torch.nn.functional.normalize(g, dim=1)
    q_sq = (q * q).sum(1, keepdim=True)
    g_sq = (g * g).sum(1)
    # A NaN or infinite feature (or one whose square overflows) shows in its row's sum of squares.
    if not (bool(torch.isfinite(q_sq).all()) and bool(torch.isfinite(g_sq).all())):
        raise ValueError("features must be finite (no NaN or infinity)")
    return _FeatureRows(q, g, q_sq, g_sq, metric)


class _FeatureRows:
    """Rows of query-to-gallery distances from features: one BLAS product per block (``raw``), then
    the element-wise part (``finish``, in place). ``query_ranks`` calls ``finish`` slice by slice on
    its ranking threads, while the slice is in cache, instead of in four passes over the block."""

    def __init__(self, q: torch.Tensor, g: torch.Tensor, q_sq: torch.Tensor, g_sq: torch.Tensor,
                 metric: str) -> None:
        self.q, self.g, self.q_sq, self.g_sq, self.metric = q, g, q_sq, g_sq, metric
        on_cpu = q.device.type == "cpu"
        self.q_np = q.contiguous().numpy() if on_cpu else None
        self.g_np = g.contiguous().numpy() if on_cpu else None

    def raw(self, start: int, stop: int) -> torch.Tensor:
        if self.q_np is not None:
            return torch.from_numpy(self.q_np[start:stop] @ self.g_np.T)
        return self.q[start:stop] @ self.g.T

    def finish(self, prod: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        if self.metric == "cosine":
            return prod.mul_(-1.0).add_(1.0)
        # Squared Euclidean ranks exactly like Euclidean and avoids a sqrt; clamp the rounding negatives.
        return prod.mul_(-2.0).add_(self.g_sq[None, :]).add_(self.q_sq[start:stop]).clamp_(min=0)

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        return self.finish(self.raw(start, stop), start, stop)


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
    workers: int | None = None,
) -> dict[str, float]:
    """:func:`reid_metrics` on features qf (Q, D) and gf (G, D); distances are computed block by block."""
    return query_ranks_from_features(
        qf, gf, q_ids, g_ids, q_groups, g_groups, metric=metric, chunk_size=chunk_size, device=device,
        show_progress=show_progress, workers=workers).metrics(macro, ranks)


def query_ranks_from_features(
    qf: ArrayLike,
    gf: ArrayLike,
    q_ids: ArrayLike,
    g_ids: ArrayLike,
    q_groups: ArrayLike | None = None,
    g_groups: ArrayLike | None = None,
    *,
    metric: str = "euclidean",
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
    show_progress: bool = False,
    workers: int | None = None,
) -> QueryRanks:
    """:func:`query_ranks` on features (one pass gives both the macro and the micro numbers)."""
    rows = feature_distances(qf, gf, metric=metric, device=device)
    return query_ranks(rows, q_ids, g_ids, q_groups, g_groups, chunk_size=chunk_size, device=device,
                       show_progress=show_progress, workers=workers)
