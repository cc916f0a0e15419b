"""Tracker quality on real public detections, scored with motmetrics against the ground truth.

Baseline in the same test: the same detections, each its own track id (no tracking at all).
MOT17-mini: the frames exist (img1/), so detections carry a simple appearance embedding computed from
the pixels (HSV histograms over horizontal body stripes). PETS09-S2L1: 795 frames of MOT15 public
detections, IoU/motion only (no pixels needed), a long sequence with crossings and occlusions.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from portrait_builder.boxes import xywh_to_xyxy
from portrait_builder.detect.types import Detections
from portrait_builder.track import JDETracker, TrackerConfig
from portrait_builder.track.evaluate import mot_metrics, read_mot, read_mot17_gt


def stripe_embedding(image: np.ndarray, boxes: np.ndarray, stripes: int = 6) -> np.ndarray:
    """(N, stripes * 32) L2-normalised hue x saturation histograms of horizontal stripes of each box."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    height, width = image.shape[:2]
    out = np.zeros((len(boxes), stripes * 32), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        crop = hsv[max(y1, 0) : min(y2, height), max(x1, 0) : min(x2, width)]
        if crop.size == 0:
            continue
        parts = []
        for stripe in np.array_split(crop, stripes, axis=0):
            h = cv2.calcHist([stripe], [0, 1], None, [8, 4], [0, 180, 0, 256]).ravel()
            parts.append(h / max(h.sum(), 1.0))
        f = np.concatenate(parts)
        out[i] = f / max(np.linalg.norm(f), 1e-9)
    return out


def _rows(frame: int, boxes: np.ndarray, ids) -> list[tuple]:
    return [(frame, int(i), b[0], b[1], b[2] - b[0], b[3] - b[1]) for b, i in zip(boxes, ids, strict=True)]


def _frame_table(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["frame", "id", "x", "y", "w", "h"])


def _run(det: pd.DataFrame, frames, tracker: JDETracker, embed=None):
    """Track ``frames`` of ``det``; return (tracker output, untracked baseline) as MOT tables."""
    groups = dict(tuple(det.groupby("frame")))
    hyp, base, next_base_id = [], [], 1
    for f in frames:
        d = groups.get(f, det.iloc[:0])
        boxes = xywh_to_xyxy(d[["x", "y", "w", "h"]].to_numpy())
        emb = embed(f, boxes) if embed else np.zeros((len(boxes), 0), np.float32)
        out = tracker.update(Detections(boxes, d["conf"].to_numpy(), emb))
        hyp += _rows(f, out.xyxy, out.track_ids)
        base += _rows(f, boxes, range(next_base_id, next_base_id + len(boxes)))
        next_base_id += len(boxes)
    return _frame_table(hyp), _frame_table(base)


def _offset(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """Put sequence k in its own frame and id range so several sequences score as one."""
    return df.assign(frame=df["frame"] + 100_000 * k, id=df["id"] + 10_000_000 * k)


def test_mot17_mini_public_detections_with_appearance(shared_data):
    root = shared_data / "mot" / "MOT17-mini" / "train"
    cfg = TrackerConfig(min_score=0.5, det_threshold=0.5)  # JDE's confidence threshold on FRCNN scores
    gts, hyps, bases = [], [], []
    for k, seq in enumerate(sorted(p for p in root.iterdir() if (p / "img1").is_dir())):
        frames = sorted(int(p.stem) for p in (seq / "img1").glob("*.jpg"))
        det = read_mot(seq / "det" / "det.txt", gt=False)
        det = det[det["conf"] >= cfg.min_score]  # the baseline sees the same detections

        def embed(f, boxes, seq=seq):
            return stripe_embedding(cv2.imread(str(seq / "img1" / f"{f:06d}.jpg")), boxes)

        hyp, base = _run(det, frames, JDETracker(cfg, frame_rate=30.0), embed)
        gt = read_mot17_gt(seq / "gt" / "gt.txt")
        gts.append(_offset(gt[gt["frame"].isin(frames)], k))
        hyps.append(_offset(hyp, k))
        bases.append(_offset(base, k))
    gt, hyp, base = pd.concat(gts), pd.concat(hyps), pd.concat(bases)
    tracked, untracked = mot_metrics(gt, hyp), mot_metrics(gt, base)
    print("MOT17-mini tracker", tracked, "\nuntracked", untracked)
    # Measured (39 frames, 7 sequences): see docs/benchmarks.md. Floors well above the baseline.
    assert tracked["mota"] >= 0.40 and tracked["idf1"] >= 0.55
    assert tracked["mota"] >= untracked["mota"] + 0.25
    assert tracked["idf1"] >= untracked["idf1"] + 0.30
    assert tracked["num_switches"] <= 5 < untracked["num_switches"]


def test_pets09_public_detections_iou_only(shared_data):
    folder = shared_data / "mot" / "PETS09-S2L1"
    gt = read_mot(folder / "gt" / "gt.txt")  # native 768x576 pixels, same as det.txt
    det = read_mot(folder / "det" / "det.txt", gt=False)
    det = det.assign(conf=det["conf"] / 100.0)  # MOT15 detector scores are 0..100
    det = det[det["conf"] >= 0.4]
    cfg = TrackerConfig(min_score=0.4, det_threshold=0.4)
    hyp, base = _run(det, range(1, 796), JDETracker(cfg, frame_rate=7.0))  # PETS 2009 is 7 fps
    tracked, untracked = mot_metrics(gt, hyp), mot_metrics(gt, base)
    print("PETS09 tracker", tracked, "\nuntracked", untracked)
    assert tracked["mota"] >= 0.65 and tracked["idf1"] >= 0.50
    assert tracked["mota"] >= untracked["mota"] + 0.5
    assert tracked["idf1"] >= untracked["idf1"] + 0.4
    assert tracked["num_switches"] < untracked["num_switches"] / 20
