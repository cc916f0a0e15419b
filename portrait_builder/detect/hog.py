"""The built-in default detector: OpenCV's HOG people detector plus a colour-stripe embedding.

Box calibration: the HOG window (64x128) carries a margin around the person, so raw boxes are about
twice as wide and 1.4x as tall as a ground-truth person box. The factors below were fitted on the
PETS09-S2L1 clip (every 15th frame, upscale 2, scale step 1.1): for each HOG box matching a ground-truth
box (IoU > 0.4 after a rough shrink), the median ratio GT width / HOG width = 0.488, GT height / HOG
height = 0.702 and centre offset (GT cy - HOG cy) / HOG height = -0.006 (212 pairs). With them the
matched mean IoU is 0.75 and recall at IoU 0.5 is 0.69 at precision 0.94 (raw boxes: IoU about 0.36,
so nearly nothing matches at 0.5). See docs/ingest.md.
"""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np

from portrait_builder.detect.embed import EMBEDDING_DIM, stripe_embeddings
from portrait_builder.detect.types import Detections
from portrait_builder.errors import UserError

# Fitted calibration (see the module docstring).
WIDTH_FACTOR = 0.488
HEIGHT_FACTOR = 0.702
CENTRE_DY = -0.006


def calibrate_hog_boxes(xyxy: np.ndarray) -> np.ndarray:
    """Shrink raw HOG windows to the person inside them."""
    b = np.asarray(xyxy, np.float32).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2 + CENTRE_DY * h
    w, h = w * WIDTH_FACTOR, h * HEIGHT_FACTOR
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)


class HOGDetector:
    """OpenCV HOG + linear SVM people detector (no weights to download).

    upscale: resize factor before detection. The HOG window finds people about 96 px tall or more; for
        smaller people (PETS09 at 480x360: 50-80 px) use 2.0. Boxes are mapped back to source pixels.
    scale: pyramid step (1.1 is about twice as fast as OpenCV's 1.05 for about 1 point of recall).
    win_stride: window step in pixels; hit_threshold: SVM margin threshold.
    padding: pixels (per pyramid level) by which windows may reach past the image border (OpenCV pads
        by reflection). 16 finds people entering or leaving the frame that a window inside the image
        cannot cover: on the synthetic clips recall 0.62 -> 0.74 at unchanged precision; the box
        calibration does not depend on it (same windows, measured on PETS09 again: docs/benchmarks.md).
    Scores are sigmoid(SVM margin), so ``hit_threshold`` 0 gives scores >= 0.5.
    """

    name = "hog"
    embedding_dim = EMBEDDING_DIM

    def __init__(
        self,
        *,
        weights: str | None = None,
        device: str = "auto",
        upscale: float = 1.0,
        scale: float = 1.1,
        win_stride: int = 8,
        hit_threshold: float = 0.0,
        padding: int = 16,
        batch_size: int = 1,
    ):
        if weights:
            raise UserError("the hog detector has no weights (it uses OpenCV's built-in people SVM); drop --weights")
        if not hasattr(cv2, "HOGDescriptor"):
            raise UserError("this OpenCV has no HOGDescriptor (OpenCV 5 removed it); install opencv-python-headless<5")
        if upscale <= 0 or scale <= 1.0 or win_stride < 1 or padding < 0:
            raise UserError(
                f"hog: need upscale > 0, scale > 1, win_stride >= 1, padding >= 0 (got {upscale}, {scale}, {win_stride}, {padding})"
            )
        self.upscale, self.scale, self.win_stride, self.hit_threshold = float(upscale), float(scale), int(win_stride), float(hit_threshold)
        self.padding = int(padding)
        self.batch_size = int(batch_size)
        self.device = "cpu"  # HOG runs on the CPU whatever was asked; OpenCV threads it
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        params = {
            "backend": "hog",
            "opencv": cv2.__version__,
            "upscale": self.upscale,
            "scale": self.scale,
            "win_stride": self.win_stride,
            "hit_threshold": self.hit_threshold,
            "padding": self.padding,
            "calibration": [WIDTH_FACTOR, HEIGHT_FACTOR, CENTRE_DY],
            "embedding": f"hsv-stripes-{EMBEDDING_DIM}",
        }
        self.params = params
        self.fingerprint = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()

    def detect_one(self, frame: np.ndarray) -> Detections:
        img = frame
        if self.upscale != 1.0:
            img = cv2.resize(frame, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_LINEAR)
        rects, weights = self._hog.detectMultiScale(
            img, hitThreshold=self.hit_threshold, winStride=(self.win_stride, self.win_stride), padding=(self.padding, self.padding), scale=self.scale
        )
        if len(rects) == 0:
            return Detections.empty(self.embedding_dim)
        raw = np.asarray(rects, np.float32).reshape(-1, 4) / self.upscale
        raw[:, 2:] += raw[:, :2]
        boxes = calibrate_hog_boxes(raw)
        h, w = frame.shape[:2]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        margin = np.asarray(weights, np.float32).reshape(-1)
        scores = 1.0 / (1.0 + np.exp(-margin))
        return Detections(boxes, scores, stripe_embeddings(frame, boxes))

    def detect(self, frames: list[np.ndarray]) -> list[Detections]:
        return [self.detect_one(f) for f in frames]
