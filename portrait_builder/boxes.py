"""Box conventions. Inside the code a box is absolute-pixel ``xyxy`` float32; convert only at the edges."""

from __future__ import annotations

import numpy as np


def as_boxes(boxes) -> np.ndarray:
    """Any (N, 4) array-like as a contiguous float32 (N, 4) array; an empty input gives shape (0, 4)."""
    arr = np.asarray(boxes, dtype=np.float32)
    if arr.size == 0:
        return np.zeros((0, 4), np.float32)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {arr.shape}")
    return np.ascontiguousarray(arr)


def xywh_to_xyxy(xywh) -> np.ndarray:
    """Top-left x, y plus width, height (MOTChallenge, OpenCV) to xyxy."""
    b = as_boxes(xywh).copy()
    b[:, 2:] += b[:, :2]
    return b


def xyxy_to_xywh(xyxy) -> np.ndarray:
    b = as_boxes(xyxy).copy()
    b[:, 2:] -= b[:, :2]
    return b


def cxcywh_to_xyxy(cxcywh) -> np.ndarray:
    """Centre x, y plus width, height (YOLO/JDE outputs) to xyxy."""
    b = as_boxes(cxcywh)
    half = b[:, 2:] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def xyxy_to_cxcywh(xyxy) -> np.ndarray:
    b = as_boxes(xyxy)
    wh = b[:, 2:] - b[:, :2]
    return np.concatenate([b[:, :2] + wh / 2, wh], axis=1)


def xyxy_to_xyah(xyxy) -> np.ndarray:
    """Centre x, y, aspect w/h, height: the Kalman filter's measurement space."""
    c = xyxy_to_cxcywh(xyxy)
    return np.stack([c[:, 0], c[:, 1], c[:, 2] / np.maximum(c[:, 3], 1e-6), c[:, 3]], axis=1)


def xyah_to_xyxy(xyah) -> np.ndarray:
    a = np.asarray(xyah, dtype=np.float32).reshape(-1, 4)
    w = a[:, 2] * a[:, 3]
    return cxcywh_to_xyxy(np.stack([a[:, 0], a[:, 1], w, a[:, 3]], axis=1))


def box_iou(a, b) -> np.ndarray:
    """(N, M) intersection over union of two xyxy box sets."""
    a, b = as_boxes(a), as_boxes(b)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return (inter / np.maximum(union, 1e-9)).astype(np.float32)
