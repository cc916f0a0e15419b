"""Detection average precision (one class), for checking a trained JDE model against ground truth."""

from __future__ import annotations

import numpy as np

from portrait_builder.boxes import box_iou


def match_detections(preds: list[tuple[np.ndarray, np.ndarray]], gts: list[np.ndarray], iou_thres: float = 0.5):
    """Greedy matching in decreasing score over all images (PASCAL VOC): a prediction is a true positive when
    its best-overlapping ground-truth box in the same image has IoU >= ``iou_thres`` and is still unmatched.

    preds: per image (boxes (K, 4) xyxy, scores (K,)); gts: per image (M, 4) xyxy.
    Returns (scores (P,), is_tp (P,) bool) sorted by decreasing score, and the number of ground-truth boxes.
    """
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} prediction lists for {len(gts)} images")
    rows = []
    for img, (_boxes, scores) in enumerate(preds):
        for k, s in enumerate(np.asarray(scores, np.float32).reshape(-1)):
            rows.append((float(s), img, k))
    rows.sort(key=lambda r: -r[0])
    used = [np.zeros(len(g), bool) for g in gts]
    ious = [box_iou(np.asarray(p[0]).reshape(-1, 4), np.asarray(g).reshape(-1, 4)) for p, g in zip(preds, gts, strict=True)]
    tp = np.zeros(len(rows), bool)
    for r, (_, img, k) in enumerate(rows):
        iou = ious[img][k] if ious[img].shape[1] else np.zeros(0)
        if iou.size == 0:
            continue
        j = int(np.argmax(iou))
        if iou[j] >= iou_thres and not used[img][j]:
            used[img][j] = True
            tp[r] = True
    scores = np.array([r[0] for r in rows], np.float32)
    return scores, tp, int(sum(len(g) for g in gts))


def average_precision(preds: list[tuple[np.ndarray, np.ndarray]], gts: list[np.ndarray], iou_thres: float = 0.5) -> float:
    """AP at ``iou_thres``: sum over the ranked predictions of precision@k times the recall gained at k
    (no interpolation; missed ground truth caps the recall). Equals scikit-learn's
    ``average_precision_score(is_tp, scores) * (matched / ground-truth count)`` when scores have no ties."""
    scores, tp, n_gt = match_detections(preds, gts, iou_thres)
    if n_gt == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    ctp = np.cumsum(tp)
    precision = ctp / np.arange(1, len(tp) + 1)
    return float(np.sum(precision[tp]) / n_gt)
