"""Near-duplicate groups: connected components of the graph "Hamming distance <= threshold".

Exact and fast via the pigeonhole principle (Manku et al., "Detecting near-duplicates for web
crawling", 2007): split the 64 bits into ``B`` blocks; two hashes within distance ``T`` differ in at
most ``T`` blocks, so they agree exactly on at least ``B - T`` of them. For every choice of ``B - T``
blocks ("a table"), hashes that agree on those blocks are candidates; each candidate pair is
verified with a popcount. Every true edge is found in at least one table, and no false edge survives
the check, so the components equal brute force. ``B`` is chosen per call by a cost model (more
blocks: more tables but fewer false candidates).
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from portrait_builder.defaults import PHASH_THRESHOLD

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = PHASH_THRESHOLD  # why 8: see portrait_builder/defaults.py

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


def popcount64(x: np.ndarray) -> np.ndarray:
    """Bits set per uint64 (NumPy >= 2 has ``bitwise_count``; the SWAR fallback for older ones)."""
    x = np.asarray(x, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return ((x * _H01) >> np.uint64(56)).astype(np.int64)


def hamming(a, b) -> np.ndarray:
    """Element-wise Hamming distance of uint64 arrays (broadcasting)."""
    return popcount64(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))


def _choose_blocks(n: int, threshold: int) -> int:
    """Number of blocks minimising (tables x (sort cost + expected random candidates))."""
    best, best_cost = threshold + 1, math.inf
    for b in range(threshold + 1, min(64, threshold + 9) + 1):
        tables = math.comb(b, b - threshold)
        key_bits = 64 * (b - threshold) / b
        # measured on the dev box: ~7 ns per element and sort level, ~20 ns per random candidate pair
        cost = tables * (n * max(math.log2(max(n, 2)), 1) * 7.0 + (n * n / 2) / 2**key_bits * 20.0)
        if cost < best_cost:
            best, best_cost = b, cost
    return best


class _Components:
    """Incremental connected components: edges are buffered and folded in with scipy."""

    def __init__(self, n: int):
        self.label = np.arange(n, dtype=np.int64)
        self.n_labels = n
        self.buf_a: list[np.ndarray] = []
        self.buf_b: list[np.ndarray] = []
        self.buffered = 0

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        la, lb = self.label[a], self.label[b]
        keep = la != lb  # already connected: nothing to add
        if keep.any():
            self.buf_a.append(la[keep])
            self.buf_b.append(lb[keep])
            self.buffered += int(keep.sum())
        if self.buffered > 2_000_000:
            self.flush()

    def flush(self) -> None:
        if not self.buffered:
            return
        a = np.concatenate(self.buf_a)
        b = np.concatenate(self.buf_b)
        graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(self.n_labels, self.n_labels))
        n_comp, comp = connected_components(graph, directed=False)
        self.label = comp[self.label].astype(np.int64)
        self.n_labels = n_comp
        self.buf_a, self.buf_b, self.buffered = [], [], 0


def _brute_force_edges(h: np.ndarray, threshold: int, keys: np.ndarray | None, comps: _Components,
                       chunk: int = 2048) -> None:
    n = len(h)
    for s in range(0, n, chunk):
        block = h[s : s + chunk]
        d = popcount64(np.bitwise_xor(block[:, None], h[None, s:]))
        ok = d <= threshold
        if keys is not None:
            ok &= keys[s : s + chunk, None] == keys[None, s:]
        ii, jj = np.nonzero(ok)
        sel = jj > ii  # j offsets are relative to s; keep i < j
        comps.add(ii[sel] + s, jj[sel] + s)


def group_hashes(hashes, threshold: int = DEFAULT_THRESHOLD, keys=None) -> np.ndarray:
    """Connected components of "Hamming distance <= threshold" over uint64 hashes.

    ``keys`` (optional, same length, integers) restricts edges to hashes with equal keys (for example
    the video id, for grouping within each video only). Returns, per hash, the smallest index of its
    component (int64), so group ids are deterministic and a singleton's id is its own index.
    """
    h = np.asarray(hashes)
    if h.dtype == np.int64:
        h = h.view(np.uint64)
    h = np.ascontiguousarray(h, dtype=np.uint64).ravel()
    n = len(h)
    if not 0 <= int(threshold) <= 64:
        raise ValueError(f"threshold must be between 0 and 64 bits, got {threshold}")
    threshold = int(threshold)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = None
    if keys is not None:
        k = np.asarray(keys)
        if len(k) != n:
            raise ValueError(f"keys has {len(k)} entries for {n} hashes")
        _, k = np.unique(k, return_inverse=True)
        k = k.astype(np.int64).ravel()
    # Identical (hash, key) pairs are always one component: solve on the unique ones.
    if k is None:
        uniq, inverse = np.unique(h, return_inverse=True)
        ukeys = None
    else:
        rec = np.empty(n, dtype=[("k", np.int64), ("h", np.uint64)])
        rec["k"], rec["h"] = k, h
        urec, inverse = np.unique(rec, return_inverse=True)
        uniq, ukeys = np.ascontiguousarray(urec["h"]), np.ascontiguousarray(urec["k"])
    inverse = inverse.ravel()
    m = len(uniq)
    comps = _Components(m)
    if threshold >= 64:
        if ukeys is None:
            comps.label[:] = 0
        else:
            comps.label = ukeys.copy()
    elif threshold > 0 and m > 1:
        if m <= 6000 or threshold > 24:
            _brute_force_edges(uniq, threshold, ukeys, comps)
        else:
            _multi_index_edges(uniq, threshold, ukeys, comps)
    comps.flush()
    label = comps.label[inverse]
    # component id -> smallest original index in it
    first = np.full(label.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, label, np.arange(n, dtype=np.int64))
    return first[label]


def _block_ranges(n_blocks: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, 64, n_blocks + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def _table_pairs(h: np.ndarray, threshold: int, keys: np.ndarray | None, chosen: tuple[int, ...],
                 ranges: list[tuple[int, int]], idx_bits: int, key_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Close pairs (i, j) among hashes that agree on the ``chosen`` blocks (and on the key)."""
    m = len(h)
    width = sum(hi - lo for lo, hi in (ranges[c] for c in chosen))
    if width + idx_bits + key_bits <= 64:
        # Pack (key, chosen block bits, index) into one uint64 and sort values, not indices:
        # a plain sort is several times faster than argsort, and runs of equal prefixes are buckets.
        packed = np.zeros(m, dtype=np.uint64)
        shift = 0
        for c in reversed(chosen):
            lo, hi = ranges[c]
            packed |= ((h >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)) << np.uint64(shift)
            shift += hi - lo
        if keys is not None:
            packed |= keys.astype(np.uint64) << np.uint64(shift)
        packed = (packed << np.uint64(idx_bits)) | np.arange(m, dtype=np.uint64)
        packed.sort()
        order = (packed & np.uint64((1 << idx_bits) - 1)).astype(np.int64)
        bucket = packed >> np.uint64(idx_bits)
    else:
        mask = np.uint64(0)
        for c in chosen:
            lo, hi = ranges[c]
            mask |= np.uint64(((1 << hi) - 1) ^ ((1 << lo) - 1))
        masked = h & mask
        order = np.lexsort((masked,) if keys is None else (masked, keys))
        mk = masked[order]
        change = np.concatenate(([True], mk[1:] != mk[:-1]))
        if keys is not None:
            kk = keys[order]
            change[1:] |= kk[1:] != kk[:-1]
        bucket = np.cumsum(change)
    return _verify_runs(order, bucket, h, threshold)


def _multi_index_edges(h: np.ndarray, threshold: int, keys: np.ndarray | None, comps: _Components,
                       workers: int = 2) -> None:
    m = len(h)
    n_blocks = _choose_blocks(m, threshold)
    ranges = _block_ranges(n_blocks)
    need = n_blocks - threshold
    idx_bits = max(int(m - 1).bit_length(), 1)
    key_bits = 0 if keys is None else max(int(keys.max()).bit_length(), 1)
    tables = list(combinations(range(n_blocks), need))
    log.debug("grouping %d hashes: %d blocks, %d tables", m, n_blocks, len(tables))

    def one(chosen):
        return _table_pairs(h, threshold, keys, chosen, ranges, idx_bits, key_bits)

    # numpy's sort and element-wise kernels release the GIL: tables run in parallel threads,
    # the union of their edges is folded in by this thread.
    if workers > 1 and len(tables) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for a, b in pool.map(one, tables):
                if len(a):
                    comps.add(a, b)
    else:
        for chosen in tables:
            a, b = one(chosen)
            if len(a):
                comps.add(a, b)


def _verify_runs(order: np.ndarray, bucket: np.ndarray, h: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair inside each run of equal ``bucket`` values (sorted) within ``threshold``, shift by shift.

    Position i pairs with i+d while bucket[i+d] == bucket[i]; since the array is sorted, once that
    fails for some d it fails for all larger d, so the active set only shrinks: total work is the
    number of candidate pairs plus O(n), with no pair index arrays materialised up front.
    """
    hs = h[order]
    active = np.flatnonzero(bucket[1:] == bucket[:-1])
    d = 1
    n = len(bucket)
    out_a: list[np.ndarray] = []
    out_b: list[np.ndarray] = []
    while len(active):
        partner = active + d
        close = popcount64(hs[active] ^ hs[partner]) <= threshold
        if close.any():
            out_a.append(order[active[close]])
            out_b.append(order[partner[close]])
        d += 1
        nxt = active[active + d < n]
        active = nxt[bucket[nxt + d] == bucket[nxt]]
    if not out_a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_a), np.concatenate(out_b)


def brute_force_groups(hashes, threshold: int, keys=None) -> np.ndarray:
    """Reference implementation: all pairs, O(n^2). Same output convention as :func:`group_hashes`."""
    h = np.ascontiguousarray(np.asarray(hashes).view(np.uint64) if np.asarray(hashes).dtype == np.int64
                             else np.asarray(hashes, dtype=np.uint64))
    n = len(h)
    comps = _Components(n)
    k = None if keys is None else np.asarray(keys)
    _brute_force_edges(h, int(threshold), k, comps)
    comps.flush()
    label = comps.label
    first = np.full(label.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(first, label, np.arange(n, dtype=np.int64))
    return first[label] if n else np.zeros(0, np.int64)


def clustered_hashes(n: int, seed: int = 0, cluster_size: int = 10, max_flips: int = 7) -> np.ndarray:
    """Synthetic uint64 hashes for tests and benchmarks: random centres, members up to ``max_flips``
    random bit flips away (about ``cluster_size`` per centre), so chains across a threshold exist."""
    rng = np.random.default_rng(seed)
    n_centres = max(n // cluster_size, 1)
    centres = rng.integers(0, 2**64, n_centres, dtype=np.uint64, endpoint=False)
    h = centres[rng.integers(0, n_centres, n)].copy()
    flips = rng.integers(0, max_flips + 1, n)
    for f in range(max_flips):
        bit = rng.integers(0, 64, n).astype(np.uint64)
        h = np.where(flips > f, h ^ (np.uint64(1) << bit), h)
    return h
