"""Re-id, F1 and PIQ metrics against references: a plain NumPy Market-1501 evaluation (torchreid's
eval_market1501 logic with pHash-group exclusion instead of same-camera exclusion), scikit-learn's
f1_score(average='macro') and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from portrait_builder.evaluate import macro_f1, piq, reid_metrics, reid_metrics_from_features
from portrait_builder.testing.reid_reference import market1501_reference


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("with_groups", [False, True])
@pytest.mark.parametrize("quality", ["random", "good"])  # many / few items before the last match
def test_baseline_micro_equals_market1501_reference(seed, with_groups, quality):
    rng = np.random.default_rng(seed)
    nq, ng = 60, 400
    dist = rng.random((nq, ng))
    q_ids = rng.integers(0, 15, nq)
    g_ids = rng.integers(0, 20, ng)
    if quality == "good":
        dist += 0.9 * (q_ids[:, None] != g_ids[None, :])
    if with_groups:
        q_groups = rng.integers(-1, 30, nq)  # -1: no group
        g_groups = rng.integers(-1, 30, ng)
    else:
        q_groups = np.full(nq, -1)
        g_groups = np.full(ng, -1)
    ref = market1501_reference(dist, q_ids, g_ids, q_groups, g_groups)
    for chunk in (None, 7):
        ours = reid_metrics(dist, q_ids, g_ids, q_groups, g_groups, macro=False, chunk_size=chunk)
        for key in ("rank1", "rank5", "rank10", "mAP"):
            assert ours[key] == pytest.approx(ref[key], abs=1e-6), key


def test_baseline_features_path_equals_reference():
    rng = np.random.default_rng(5)
    qf = rng.normal(size=(40, 16))
    gf = rng.normal(size=(300, 16))
    q_ids, g_ids = rng.integers(0, 8, 40), rng.integers(0, 8, 300)
    groups_q, groups_g = rng.integers(-1, 10, 40), rng.integers(-1, 10, 300)
    euclid = np.sqrt(((qf[:, None, :] - gf[None, :, :]) ** 2).sum(-1))
    ref = market1501_reference(euclid, q_ids, g_ids, groups_q, groups_g)
    ours = reid_metrics_from_features(qf, gf, q_ids, g_ids, groups_q, groups_g, macro=False, chunk_size=9)
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], abs=1e-6)
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    ref_cos = market1501_reference(1 - qn @ gn.T, q_ids, g_ids, groups_q, groups_g)
    ours_cos = reid_metrics_from_features(torch.tensor(qf), torch.tensor(gf), q_ids, g_ids, groups_q, groups_g,
                                          macro=False, metric="cosine")
    for key in ref_cos:
        assert ours_cos[key] == pytest.approx(ref_cos[key], abs=1e-6)


def test_baseline_macro_and_group_exclusion_by_hand():
    # Gallery: ids [1, 2, 1, 3, 2]; groups [5, -, 6, -, 7].
    g_ids = np.array([1, 2, 1, 3, 2])
    g_groups = np.array([5, -1, 6, -1, 7])
    q_ids = np.array([1, 1, 2])
    q_groups = np.array([5, -1, 7])
    dist = np.array([
        [0.1, 0.2, 0.3, 0.4, 0.5],  # q0 (id 1, group 5): gallery 0 is ignored -> order 1,2,3,4: hit at rank 2
        [0.5, 0.1, 0.2, 0.3, 0.4],  # q1 (id 1): order 1,2,3,4,0 -> hits at ranks 2 and 5
        [0.3, 0.4, 0.2, 0.1, 0.05],  # q2 (id 2, group 7): gallery 4 ignored -> order 3,2,0,1: hit at 4
    ])
    ap = [1 / 2, (1 / 2 + 2 / 5) / 2, 1 / 4]
    micro = reid_metrics(dist, q_ids, g_ids, q_groups, g_groups, macro=False)
    assert micro["rank1"] == 0
    assert micro["rank5"] == 1
    assert micro["mAP"] == pytest.approx(sum(ap) / 3)
    macro = reid_metrics(dist, q_ids, g_ids, q_groups, g_groups, macro=True)
    # Identity 1 averages its two queries first, then identities 1 and 2 count equally.
    assert macro["mAP"] == pytest.approx(((ap[0] + ap[1]) / 2 + ap[2]) / 2)
    # Without the group rule q0 would hit at rank 1 and q2 at rank 1.
    plain = reid_metrics(dist, q_ids, g_ids, macro=False)
    assert plain["rank1"] == pytest.approx(2 / 3)


def test_baseline_null_gallery_ids_are_distractors_and_queries_without_match_skipped():
    g_ids = np.array([-1, 1, -1])  # -1 / None: an unidentified gallery crop, never a match
    dist = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    out = reid_metrics(dist, np.array([1, 9]), g_ids, macro=True)
    assert out["rank1"] == 0 and out["rank5"] == 1 and out["mAP"] == pytest.approx(0.5)
    import pandas as pd

    out2 = reid_metrics(dist, pd.array([1, 9], dtype="Int64"), pd.array([None, 1, None], dtype="Int64"))
    assert out2 == out


@pytest.mark.parametrize("seed", [0, 1])
def test_baseline_macro_f1_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 5, 200)
    p = rng.integers(0, 6, 200)
    assert macro_f1(t, p) == pytest.approx(f1_score(t, p, average="macro"))
    names = np.array(["a", "b", "c"])
    assert macro_f1(names[t % 3], names[p % 3]) == pytest.approx(f1_score(names[t % 3], names[p % 3], average="macro"))
    tm = rng.random((150, 7)) < 0.3
    pm = rng.random((150, 7)) < 0.3
    tm[:, 6] = False  # a class with no true sample
    pm[:, 6] = False  # and never predicted: scikit-learn scores it 0
    assert macro_f1(tm, pm, multilabel=True) == pytest.approx(
        f1_score(tm, pm, average="macro", zero_division=0))


def test_baseline_piq_by_hand():
    f1 = {"gender": 0.9, "age": 0.3, "physique": 0.4, "height": 0.2, "body_posture": 0.6,
          "arm_posture": 0.2, "expression": 0.25}
    out = piq(0.8, 0.4, f1)
    assert out["ReID"] == pytest.approx(0.6)
    assert out["App"] == pytest.approx(0.45)
    assert out["Pos"] == pytest.approx(0.4)
    assert out["Emo"] == pytest.approx(0.25)
    assert out["PIQ"] == pytest.approx((0.6 + 0.45 + 0.4 + 0.25) / 4)
    assert math.isnan(piq(0.8, 0.4, {"gender": 1.0})["PIQ"])
