"""Near-duplicate groups: exactly the connected components brute force finds (the reference)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from portrait_builder.dedup import DEFAULT_THRESHOLD, brute_force_groups, group_hashes, hamming, popcount64
from portrait_builder.dedup.groups import clustered_hashes


def networkx_free_reference(h: np.ndarray, threshold: int, keys=None) -> np.ndarray:
    """Independent reference: full distance matrix + scipy components, smallest index per component."""
    d = popcount64(h[:, None] ^ h[None, :])
    adj = d <= threshold
    if keys is not None:
        adj &= keys[:, None] == keys[None, :]
    ii, jj = np.nonzero(adj)
    _, comp = connected_components(coo_matrix((np.ones(len(ii)), (ii, jj)), shape=(len(h), len(h))), directed=False)
    first = np.full(comp.max() + 1, len(h))
    np.minimum.at(first, comp, np.arange(len(h)))
    return first[comp]


@pytest.mark.parametrize("threshold", [0, 1, 3, 8, 12, 20, 64])
def test_equal_to_dense_reference_small(threshold):
    h = clustered_hashes(1500, seed=threshold, cluster_size=6)
    h[:20] = h[0]  # exact duplicates
    assert np.array_equal(group_hashes(h, threshold), networkx_free_reference(h, threshold))


def test_multi_index_path_equals_brute_force_with_and_without_keys():
    # 8,000 unique hashes take the multi-index path (brute force is only used below 6,000)
    h = clustered_hashes(8000, seed=11, cluster_size=8)
    keys = np.random.default_rng(1).integers(0, 4, len(h))
    for t in (2, 5, 8):
        assert np.array_equal(group_hashes(h, t), brute_force_groups(h, t)), t
        assert np.array_equal(group_hashes(h, t, keys=keys), brute_force_groups(h, t, keys=keys)), t


@pytest.mark.slow
def test_exact_on_20000_clustered_hashes():
    """The issue's acceptance check: 20,000 clustered hashes, default threshold, against brute force."""
    h = clustered_hashes(20000, seed=2024)
    ours = group_hashes(h, DEFAULT_THRESHOLD)
    ref = brute_force_groups(h, DEFAULT_THRESHOLD)
    assert np.array_equal(ours, ref)
    sizes = np.bincount(ours)
    assert (sizes > 1).sum() > 1000  # the sample really is clustered, not all singletons


def test_group_ids_are_smallest_member_and_deterministic():
    h = clustered_hashes(3000, seed=5)
    g = group_hashes(h, 8)
    assert np.array_equal(g, group_hashes(h.copy(), 8))
    for gid in np.unique(g)[:50]:
        members = np.flatnonzero(g == gid)
        assert members.min() == gid
    # every edge <= T joins one group; members of a group are linked by a path (checked by reference above)
    close = hamming(h[:200, None], h[None, :200]) <= 8
    ii, jj = np.nonzero(close)
    assert np.all(g[ii] == g[jj])


def test_signed_input_and_edge_cases():
    h = clustered_hashes(500, seed=9)
    assert np.array_equal(group_hashes(h.view(np.int64), 8), group_hashes(h, 8))
    assert group_hashes(np.zeros(0, dtype=np.uint64), 8).shape == (0,)
    assert group_hashes(np.array([5], dtype=np.uint64), 8).tolist() == [0]
    with pytest.raises(ValueError, match="threshold"):
        group_hashes(h, 65)
    with pytest.raises(ValueError, match="keys"):
        group_hashes(h, 8, keys=[1, 2])
    # threshold 64 joins everything (within keys)
    keys = np.arange(len(h)) % 3
    assert len(np.unique(group_hashes(h, 64, keys=keys))) == 3
