"""JDE's letterbox (resize keeping the aspect ratio, pad with grey) and its inverse for boxes.

Exactly the published pre-processing: INTER_AREA resize to round(dim * ratio), padding round(d - 0.1) before and
round(d + 0.1) after (Python's round), border value 127.5 (128 in uint8), BGR -> RGB, divide by 255, no mean/std.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 127.5


@dataclass(frozen=True)
class LetterboxInfo:
    """What :func:`unletterbox_boxes` needs: source size and target size."""

    src_width: int
    src_height: int
    width: int
    height: int

    @property
    def gain(self) -> float:
        return min(self.width / self.src_width, self.height / self.src_height)

    @property
    def pad(self) -> tuple[float, float]:
        """(pad_x, pad_y) as the published inverse computes them (unrounded halves)."""
        g = self.gain
        return (self.width - self.src_width * g) / 2, (self.height - self.src_height * g) / 2


def letterbox_geometry(src_w: int, src_h: int, width: int, height: int) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """((new_w, new_h), (top, bottom, left, right)) for a src_w x src_h image into width x height."""
    ratio = min(height / src_h, width / src_w)
    new_w, new_h = round(src_w * ratio), round(src_h * ratio)
    dw, dh = (width - new_w) / 2, (height - new_h) / 2
    return (new_w, new_h), (round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1))


def letterbox_uint8(frame_bgr: np.ndarray, width: int, height: int) -> tuple[np.ndarray, LetterboxInfo]:
    """The letterboxed BGR uint8 image (height, width, 3) and the info to undo it."""
    src_h, src_w = frame_bgr.shape[:2]
    (new_w, new_h), (top, bottom, left, right) = letterbox_geometry(src_w, src_h, width, height)
    img = cv2.resize(frame_bgr, (new_w, new_h), interpolation=cv2.INTER_AREA)
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
    return img, LetterboxInfo(src_w, src_h, width, height)


def letterbox(frame_bgr: np.ndarray, width: int, height: int) -> tuple[np.ndarray, LetterboxInfo]:
    """The network input for one BGR uint8 frame: float32 (3, height, width) RGB in [0, 1]."""
    img, info = letterbox_uint8(frame_bgr, width, height)
    chw = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32)
    chw /= 255.0
    return chw, info


def unletterbox_boxes(xyxy: np.ndarray, info: LetterboxInfo, clamp: bool = True) -> np.ndarray:
    """Boxes (N, 4) xyxy in network-input pixels -> source-frame pixels (clamped to the frame)."""
    b = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4).copy()
    pad_x, pad_y = info.pad
    b[:, [0, 2]] -= pad_x
    b[:, [1, 3]] -= pad_y
    b /= info.gain
    if clamp:
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, info.src_width)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, info.src_height)
    return b


def letterbox_boxes(xyxy: np.ndarray, info: LetterboxInfo) -> np.ndarray:
    """Source-frame boxes -> network-input pixels (the forward map; used for training targets)."""
    b = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4).copy() * info.gain
    pad_x, pad_y = info.pad
    b[:, [0, 2]] += pad_x
    b[:, [1, 3]] += pad_y
    return b
