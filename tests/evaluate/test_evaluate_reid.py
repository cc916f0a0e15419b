"""Re-id ranking (portrait_builder.evaluate.reid) against references: the plain NumPy Market-1501
protocol (reference.market1501_reference, a stable argsort per row: distance ties broken by gallery
order) on random, tied and NaN inputs, through every path (blocks, slices, threads, features), and
scikit-learn's average_precision_score per query on an untied case."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from portrait_builder.evaluate import query_ranks, reid, reid_metrics, reid_metrics_from_features
from portrait_builder.testing.reid_reference import market1501_reference

KEYS = ("rank1", "rank5", "rank10", "mAP")


def _case(seed: int, nq: int, ng: int, levels: int | None, n_ids: int = 8):
    rng = np.random.default_rng(seed)
    if levels is None:
        dist = rng.random((nq, ng))
    else:  # few distinct values: ties between true matches, other items and ignored items everywhere
        dist = rng.integers(0, levels, (nq, ng)).astype(np.float64)
    q_ids = rng.integers(0, n_ids, nq)
    g_ids = rng.integers(-1, n_ids + 2, ng)  # -1: unidentified; ids >= n_ids: never queried
    q_groups = rng.integers(-1, 12, nq)
    g_groups = rng.integers(-1, 12, ng)
    return dist, q_ids, g_ids, q_groups, g_groups


def _assert_equal(ours: dict, ref: dict, tol: float = 1e-12) -> None:
    for key in KEYS:
        assert ours[key] == pytest.approx(ref[key], abs=tol), key


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("levels", [None, 2, 5, 40])
def test_evaluate_reid_equals_stable_reference_random_and_tied(seed, levels):
    dist, q_ids, g_ids, q_groups, g_groups = _case(seed, 40, 500, levels)
    ref = market1501_reference(dist, q_ids, g_ids, q_groups, g_groups)
    for chunk, workers in ((None, 1), (7, 2), (1, 1)):
        _assert_equal(reid_metrics(dist, q_ids, g_ids, q_groups, g_groups, macro=False,
                                   chunk_size=chunk, workers=workers), ref)
    # float32 input ranks in float32: the reference on the same float32 values agrees exactly too
    d32 = dist.astype(np.float32)
    _assert_equal(reid_metrics(d32, q_ids, g_ids, q_groups, g_groups, macro=False),
                  market1501_reference(d32, q_ids, g_ids, q_groups, g_groups))


def test_evaluate_reid_many_slices_blocks_and_threads(monkeypatch):
    # Small slices force many slices per block and many blocks; two ranking threads.
    monkeypatch.setattr(reid, "_SLICE_ELEMENTS", 3 * 3000)
    dist, q_ids, g_ids, q_groups, g_groups = _case(11, 90, 3000, None, n_ids=30)
    dist[:, ::7] = np.round(dist[:, ::7], 2)  # some ties among otherwise distinct values
    ref = market1501_reference(dist, q_ids, g_ids, q_groups, g_groups)
    ours = reid_metrics(torch.from_numpy(dist), q_ids, g_ids, q_groups, g_groups, macro=False,
                        chunk_size=25, workers=2)
    _assert_equal(ours, ref)


def test_evaluate_reid_slices_split_when_bucket_numbers_would_be_inexact(monkeypatch):
    monkeypatch.setattr(reid, "_EXACT_INTEGERS", 5000)  # at most 4 rows of 1,026 buckets per histogram
    dist, q_ids, g_ids, q_groups, g_groups = _case(4, 30, 400, 7)
    _assert_equal(reid_metrics(dist.astype(np.float32), q_ids, g_ids, q_groups, g_groups, macro=False),
                  market1501_reference(dist.astype(np.float32), q_ids, g_ids, q_groups, g_groups))


def test_evaluate_reid_few_buckets_many_matches_per_bucket(monkeypatch):
    # Few histogram buckets: most items share a bucket with true matches and go through the
    # one-by-one comparison (the binary search over a bucket's matches).
    monkeypatch.setattr(reid, "_MIN_BUCKETS", 2)
    monkeypatch.setattr(reid, "_BUCKETS_PER_MATCH", 0)
    for levels in (None, 6):
        dist, q_ids, g_ids, q_groups, g_groups = _case(3, 30, 400, levels, n_ids=3)
        _assert_equal(reid_metrics(dist, q_ids, g_ids, q_groups, g_groups, macro=False),
                      market1501_reference(dist, q_ids, g_ids, q_groups, g_groups))


def test_evaluate_reid_average_precision_equals_sklearn():
    # Per query: AP over the kept gallery items (not in the query's pHash group) with the true
    # matches as positives and -distance as the score; untied distances (sklearn groups ties).
    dist, q_ids, g_ids, q_groups, g_groups = _case(7, 25, 300, None)
    aps = []
    for i in range(len(q_ids)):
        kept = ~((g_groups == q_groups[i]) & (q_groups[i] >= 0))
        y = g_ids[kept] == q_ids[i]
        if y.any():
            aps.append(average_precision_score(y, -dist[i, kept]))
            one = reid_metrics(dist[i:i + 1], q_ids[i:i + 1], g_ids, q_groups[i:i + 1], g_groups, macro=False)
            assert one["mAP"] == pytest.approx(aps[-1], abs=1e-12)
            first = int(np.argmax(y[np.argsort(dist[i, kept])])) + 1
            assert one["rank1"] == float(first <= 1) and one["rank5"] == float(first <= 5)
    ours = reid_metrics(dist, q_ids, g_ids, q_groups, g_groups, macro=False)
    assert ours["mAP"] == pytest.approx(np.mean(aps), abs=1e-12)


def test_evaluate_reid_nan_distance_is_farthest_like_numpy_argsort():
    dist, q_ids, g_ids, q_groups, g_groups = _case(5, 20, 200, None)
    positive = g_ids[None, :] == q_ids[:, None]
    nan_at = (np.random.default_rng(0).random(dist.shape) < 0.1) & ~positive
    dist[nan_at] = np.nan  # NumPy's argsort puts NaN after every number
    _assert_equal(reid_metrics(dist, q_ids, g_ids, q_groups, g_groups, macro=False),
                  market1501_reference(dist, q_ids, g_ids, q_groups, g_groups))
    dist[np.nonzero(positive)[0][0], np.nonzero(positive)[1][0]] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        reid_metrics(dist, q_ids, g_ids, q_groups, g_groups)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_evaluate_reid_features_path_equals_reference(metric):
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(10, 32))
    q_ids, g_ids = rng.integers(0, 10, 60), rng.integers(0, 10, 700)
    qf = centres[q_ids] + 1.5 * rng.normal(size=(60, 32))
    gf = centres[g_ids] + 1.5 * rng.normal(size=(700, 32))
    q_groups, g_groups = rng.integers(-1, 20, 60), rng.integers(-1, 20, 700)
    if metric == "cosine":
        qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
        gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
        dist = 1 - qn @ gn.T
    else:
        dist = ((qf[:, None, :] - gf[None, :, :]) ** 2).sum(-1)
    ref = market1501_reference(dist, q_ids, g_ids, q_groups, g_groups)
    for chunk in (None, 13):
        _assert_equal(reid_metrics_from_features(qf, gf, q_ids, g_ids, q_groups, g_groups, macro=False,
                                                 metric=metric, chunk_size=chunk), ref, tol=1e-9)
    # float32 features: float32 rounding may swap near-equal items only; the numbers stay close
    ours32 = reid_metrics_from_features(qf.astype(np.float32), gf.astype(np.float32), q_ids, g_ids,
                                        q_groups, g_groups, macro=False, metric=metric)
    _assert_equal(ours32, ref, tol=1e-3)


def test_evaluate_reid_rejects_non_finite_features():
    qf = np.ones((3, 4), dtype=np.float32)
    gf = np.ones((5, 4), dtype=np.float32)
    gf[2, 1] = np.inf
    with pytest.raises(ValueError, match="finite"):
        reid_metrics_from_features(qf, gf, [0, 1, 2], [0, 1, 2, 0, 1])


def test_evaluate_reid_one_pass_gives_macro_and_micro():
    dist, q_ids, g_ids, q_groups, g_groups = _case(9, 50, 300, None)
    ranked = query_ranks(dist, q_ids, g_ids, q_groups, g_groups)
    for macro in (True, False):
        assert ranked.metrics(macro) == reid_metrics(dist, q_ids, g_ids, q_groups, g_groups, macro=macro)
    # macro by hand from the per-query numbers: identities weigh equally
    v = ranked.valid
    per_id = [ranked.ap[v & (q_ids == i)].mean() for i in np.unique(q_ids[v])]
    assert ranked.metrics(True)["mAP"] == pytest.approx(np.mean(per_id))
    assert ranked.metrics(False)["mAP"] == pytest.approx(ranked.ap[v].mean())
