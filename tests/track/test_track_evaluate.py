"""MOT readers and metrics: a hand-computed case, motmetrics' own TUD expected values, PETS09 specifics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from portrait_builder.errors import UserError
from portrait_builder.track import evaluate
from portrait_builder.track.evaluate import mot_metrics, read_mot, read_mot17_gt, read_pets09_gt


def _df(rows, ignore=None):
    df = pd.DataFrame(rows, columns=["frame", "id", "x", "y", "w", "h"])
    df["conf"] = 1.0
    df["ignore"] = False if ignore is None else ignore
    return df


def test_hand_computed_tiny_case():
    # Two people (1, 2) over 3 frames. Hypothesis: a tracks 1 all along; b tracks 2 in frames 1-2,
    # then c takes over 2 in frame 3 (1 switch); frame 2 has a false positive d far away; person 2 is
    # missed in frame... none. Boxes of matched pairs overlap exactly except a shifted one.
    gt = _df([(f, 1, 0, 0, 10, 20) for f in (1, 2, 3)] + [(f, 2, 100, 0, 10, 20) for f in (1, 2, 3)])
    hyp = _df(
        [(f, 11, 0, 0, 10, 20) for f in (1, 2, 3)]
        + [(1, 12, 100, 0, 10, 20), (2, 12, 102, 0, 10, 20), (3, 13, 100, 0, 10, 20)]
        + [(2, 14, 300, 300, 10, 20)]
    )
    m = mot_metrics(gt, hyp)
    # GT = 6, FN = 0, FP = 1, IDSW = 1 -> MOTA = 1 - 2/6
    assert m["num_objects"] == 6 and m["num_misses"] == 0
    assert m["num_false_positives"] == 1 and m["num_switches"] == 1
    assert m["mota"] == pytest.approx(1 - 2 / 6)
    assert m["precision"] == pytest.approx(6 / 7) and m["recall"] == pytest.approx(1.0)
    # IDF1: best one-to-one id mapping 1<->11 (3 frames), 2<->12 (2 frames): IDTP = 5,
    # IDF1 = 2 IDTP / (num gt + num hyp) = 10 / 13.
    assert m["idf1"] == pytest.approx(10 / 13)
    # MOTP (motmetrics): mean 1 - IoU; one pair has IoU (8*20)/(12*20) = 2/3.
    assert m["motp"] == pytest.approx((1 - 2 / 3) / 6)
    # Below the IoU threshold nothing matches.
    far = hyp.assign(x=hyp["x"] + 6)
    assert mot_metrics(gt, far)["num_matches"] == 0


def test_ignored_ground_truth_is_dont_care():
    gt = _df([(1, 1, 0, 0, 10, 20), (1, 2, 100, 0, 10, 20)], ignore=[False, True])
    hyp = _df([(1, 5, 0, 0, 10, 20), (1, 6, 100, 0, 10, 20)])
    m = mot_metrics(gt, hyp)
    assert m["num_objects"] == 1 and m["num_false_positives"] == 0 and m["mota"] == 1.0
    m2 = mot_metrics(gt, hyp.iloc[:1])
    assert m2["num_misses"] == 0  # missing an ignored person costs nothing


@pytest.mark.parametrize(
    "name, expected",
    [
        # From motmetrics 1.4.0 tests/test_metrics.py::test_motchallenge_files (same files).
        ("TUD-Campus", dict(idf1=0.557659, recall=0.582173, precision=0.941441, num_false_positives=13,
                            num_misses=150, num_switches=7, mota=0.526462, motp=0.277201)),
        ("TUD-Stadtmitte", dict(idf1=0.644619, recall=0.608997, precision=0.939920, num_false_positives=45,
                                num_misses=452, num_switches=7, mota=0.564014, motp=0.345904)),
    ],
)  # fmt: skip
def test_motmetrics_tud_reference_values(shared_data, name, expected):
    folder = shared_data / "mot" / "motmetrics_TUD" / name
    m = mot_metrics(read_mot(folder / "gt.txt"), read_mot(folder / "test.txt", gt=False))
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, abs=1e-4), key


def test_pets09_gt_specifics(shared_data):
    path = shared_data / "mot" / "PETS09-S2L1" / "gt" / "gt.txt"
    native = read_mot(path)
    gt = read_pets09_gt(path)
    assert len(gt) == 4650 and int(gt["ignore"].sum()) == 174  # SOURCES.md: 4476 flag-1 + 174 flag-0 rows
    assert gt["frame"].min() == 1 and gt["frame"].max() == 795 and gt["id"].nunique() == 19
    np.testing.assert_allclose(gt[["x", "y", "w", "h"]], native[["x", "y", "w", "h"]] * 0.625)
    assert read_pets09_gt(path, frame_offset=-1)["frame"].min() == 0


def test_mot17_gt_classes(shared_data):
    path = shared_data / "mot" / "MOT17-mini" / "train" / "MOT17-02-FRCNN" / "gt" / "gt.txt"
    raw = np.loadtxt(path, delimiter=",")
    gt = read_mot17_gt(path)
    counted = (raw[:, 7] == 1) & (raw[:, 6] == 1)
    distractor = np.isin(raw[:, 7], evaluate.MOT17_DISTRACTOR_CLASSES)
    assert int((~gt["ignore"]).sum()) == int(counted.sum())
    assert len(gt) == int(((raw[:, 7] == 1) | distractor).sum())


def test_numpy_compat_shim_and_bad_files(tmp_path):
    evaluate._install_numpy_compat()
    assert np.asfarray([1, 2]).dtype == np.float64  # present either from NumPy 1.x or from the shim
    with pytest.raises(UserError, match="not found"):
        read_mot(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("hello,world\n")
    with pytest.raises(UserError, match="MOTChallenge"):
        read_mot(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert len(read_mot(empty)) == 0
