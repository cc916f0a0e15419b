"""MOTChallenge readers and CLEAR-MOT / identity metrics on top of ``motmetrics``.

``read_mot`` turns a MOTChallenge text file into a DataFrame (one row per box, ``xywh`` in pixels,
plus an ``ignore`` column for "don't care" ground truth); ``mot_metrics`` compares ground truth with
a hypothesis frame by frame and returns MOTA, IDF1, MOTP, switches, precision and recall.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from portrait_builder.boxes import box_iou, xywh_to_xyxy
from portrait_builder.errors import UserError

log = logging.getLogger(__name__)

#: MOT16/17 ground-truth classes that are neither counted nor penalised ("distractors": person on
#: vehicle, static person, distractor, reflection); a hypothesis on one is ignored, not a false positive.
MOT17_DISTRACTOR_CLASSES = (2, 7, 8, 12)
#: MOT16/17 pedestrian class.
MOT17_PEDESTRIAN = 1
#: PETS09-S2L1 ground truth is in 768x576 pixels; the 480x360 clip in ../shared/data needs x 0.625.
PETS09_SCALE = 0.625

COLUMNS = ["frame", "id", "x", "y", "w", "h", "conf", "ignore"]


def _install_numpy_compat() -> None:
    """motmetrics 1.4.0 (newest release) calls ``np.asfarray``, removed in NumPy 2.0.

    Put back the old definition (``asarray`` with a float dtype, float64 by default) only when it is
    missing, so nothing changes on NumPy 1.x or once motmetrics stops using it.
    """
    if not hasattr(np, "asfarray"):

        def asfarray(a, dtype=np.float64):
            if not np.issubdtype(np.dtype(dtype), np.inexact):
                dtype = np.float64
            return np.asarray(a, dtype=dtype)

        np.asfarray = asfarray


def _motmetrics():
    _install_numpy_compat()
    import motmetrics

    return motmetrics


def read_mot(
    path: str | Path,
    *,
    gt: bool = True,
    classes: tuple[int, ...] | None = None,
    ignore_classes: tuple[int, ...] = (),
    min_visibility: float = 0.0,
    scale: float = 1.0,
    frame_offset: int = 0,
) -> pd.DataFrame:
    """Read a MOTChallenge file (``frame,id,x,y,w,h,conf[,class,visibility | ,wx,wy,wz]``).

    ``gt=True`` (ground truth): a 0 in column 7 marks a row to ignore; rows whose class (column 8,
    MOT16/17 only) is in ``ignore_classes``, or whose visibility (column 9) is below
    ``min_visibility``, are ignored too; with ``classes`` given, rows of any other class are dropped.
    Ignored rows are kept with ``ignore=True``: :func:`mot_metrics` treats them as "don't care"
    regions. ``gt=False`` (tracker output or detections): every row is kept and ``conf`` is the score.

    Boxes are multiplied by ``scale``; ``frame_offset`` is added to frame numbers (e.g. ``-1`` for
    0-based video frame indices). Returns columns ``frame, id, x, y, w, h, conf, ignore``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"MOT file not found: {path}")
    try:
        text = path.read_text()
        raw = (
            np.loadtxt(text.splitlines(), delimiter=",", ndmin=2, dtype=np.float64)
            if text.strip()
            else np.zeros((0, 7))
        )
    except ValueError as exc:
        raise UserError(f"{path}: not a MOTChallenge text file ({exc})") from None
    if raw.size == 0:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in COLUMNS}).astype(
            {"frame": int, "id": int, "ignore": bool}
        )
    if raw.shape[1] < 7:
        raise UserError(f"{path}: expected at least 7 comma-separated columns, found {raw.shape[1]}")
    ignore = np.zeros(len(raw), bool)
    keep = np.ones(len(raw), bool)
    if gt:
        ignore |= raw[:, 6] == 0
        # Column 8 is a class only in MOT16/17 files (9 columns); MOT15 puts world x there.
        if raw.shape[1] == 9:
            cls = raw[:, 7].astype(int)
            ignore |= np.isin(cls, ignore_classes)
            if classes is not None:
                keep &= np.isin(cls, classes) | np.isin(cls, ignore_classes)
            ignore |= raw[:, 8] < min_visibility
    df = pd.DataFrame(
        {
            "frame": raw[:, 0].astype(int) + int(frame_offset),
            "id": raw[:, 1].astype(int),
            "x": raw[:, 2] * scale,
            "y": raw[:, 3] * scale,
            "w": raw[:, 4] * scale,
            "h": raw[:, 5] * scale,
            "conf": raw[:, 6],
            "ignore": ignore,
        }
    )
    return df[keep].sort_values(["frame", "id"], kind="stable").reset_index(drop=True)


def read_pets09_gt(path: str | Path, *, scale: float = PETS09_SCALE, frame_offset: int = 0) -> pd.DataFrame:
    """PETS09-S2L1 (MOT15) ground truth for the 480x360 clip: boxes x 0.625, 0-flag rows ignored.

    Frames stay MOTChallenge 1-based (video frame index k is MOT frame k + 1, as in ``--mot-out``
    files); pass ``frame_offset=-1`` for 0-based video frame indices.
    """
    return read_mot(path, gt=True, scale=scale, frame_offset=frame_offset)


def read_mot17_gt(path: str | Path, *, min_visibility: float = 0.0) -> pd.DataFrame:
    """MOT16/17 ground truth as the benchmark scores it: pedestrians counted, distractors ignored,
    other classes (vehicles, occluders) dropped."""
    return read_mot(
        path,
        gt=True,
        classes=(MOT17_PEDESTRIAN,),
        ignore_classes=MOT17_DISTRACTOR_CLASSES,
        min_visibility=min_visibility,
    )


def _drop_hyps_on_ignored(gt_xywh, ignored, hyp_xywh, iou_threshold) -> np.ndarray:
    """Boolean mask of hypotheses to keep: those not matched (one-to-one, IoU >= threshold) to an
    ignored ground-truth box when matching against all of the frame's ground truth (MOTChallenge)."""
    keep = np.ones(len(hyp_xywh), bool)
    if not ignored.any() or len(hyp_xywh) == 0:
        return keep
    iou = box_iou(xywh_to_xyxy(gt_xywh), xywh_to_xyxy(hyp_xywh)).astype(np.float64)
    cost = np.where(iou >= iou_threshold, 1.0 - iou, 1e6)
    rows, cols = linear_sum_assignment(cost)
    for r, c in zip(rows, cols, strict=True):
        if iou[r, c] >= iou_threshold and ignored[r]:
            keep[c] = False
    return keep


def accumulate(gt: pd.DataFrame, hyp: pd.DataFrame, iou_threshold: float = 0.5):
    """A ``motmetrics.MOTAccumulator`` filled frame by frame (IoU distance, max 1 - ``iou_threshold``)."""
    mm = _motmetrics()
    acc = mm.MOTAccumulator(auto_id=False)
    if "ignore" not in gt:
        gt = gt.assign(ignore=False)
    frames = np.union1d(gt["frame"].unique(), hyp["frame"].unique())
    gt_groups = dict(tuple(gt.groupby("frame")))
    hyp_groups = dict(tuple(hyp.groupby("frame")))
    empty = gt.iloc[:0]
    for frame in frames:
        g = gt_groups.get(frame, empty)
        h = hyp_groups.get(frame, empty)
        g_xywh = g[["x", "y", "w", "h"]].to_numpy(np.float64)
        h_xywh = h[["x", "y", "w", "h"]].to_numpy(np.float64)
        ignored = g["ignore"].to_numpy(bool)
        keep = _drop_hyps_on_ignored(g_xywh, ignored, h_xywh, iou_threshold)
        g_xywh, g_ids = g_xywh[~ignored], g["id"].to_numpy(np.int64)[~ignored]
        h_xywh, h_ids = h_xywh[keep], h["id"].to_numpy(np.int64)[keep]
        dist = mm.distances.iou_matrix(g_xywh, h_xywh, max_iou=1.0 - iou_threshold)
        acc.update(g_ids, h_ids, dist, frameid=int(frame))
    return acc


def mot_metrics(gt: pd.DataFrame, hyp: pd.DataFrame, iou_threshold: float = 0.5) -> dict:
    """CLEAR-MOT and identity metrics of ``hyp`` against ``gt`` (both from :func:`read_mot` or with
    its columns). A pair matches when IoU >= ``iou_threshold``.

    Returns floats: ``mota``, ``idf1``, ``motp`` (motmetrics' convention: mean 1 - IoU of matched
    pairs, lower is better; MOTChallenge reports ``mean_iou`` = 1 - motp), ``mean_iou``,
    ``precision``, ``recall``; and ints ``num_switches``, ``num_false_positives``, ``num_misses``,
    ``num_objects``, ``num_matches``, ``num_unique_objects``, ``mostly_tracked``, ``mostly_lost``,
    ``num_fragmentations``.
    """
    mm = _motmetrics()
    acc = accumulate(gt, hyp, iou_threshold)
    names = [
        "mota", "idf1", "motp", "precision", "recall", "num_switches", "num_false_positives", "num_misses",
        "num_objects", "num_matches", "num_unique_objects", "mostly_tracked", "mostly_lost", "num_fragmentations",
    ]  # fmt: skip
    summary = mm.metrics.create().compute(acc, metrics=names, name="seq")
    out = {}
    for name in names:
        value = summary[name].iloc[0]
        out[name] = int(value) if name.startswith(("num_", "mostly_")) else float(value)
    out["mean_iou"] = 1.0 - out["motp"] if np.isfinite(out["motp"]) else float("nan")
    return out
