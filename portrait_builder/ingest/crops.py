"""Crop geometry and quality: 1:2 boxes around the centre, padding, 256x128 resize, sharpness score."""

from __future__ import annotations

import cv2
import numpy as np

CROP_H, CROP_W = 256, 128
#: Where the expanded box leaves the frame it is padded with this constant colour (black), not
#: replicated: replicated edge pixels look like smeared body parts to annotators and re-id models.
PAD_VALUE = (0, 0, 0)


def expand_to_aspect(xyxy: np.ndarray, aspect_wh: float = 0.5) -> np.ndarray:
    """Grow each box around its centre to width/height = ``aspect_wh`` (never shrinks a side), so the body
    is not distorted by the final resize."""
    b = np.asarray(xyxy, np.float32).reshape(-1, 4)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    h2 = np.maximum(h, w / aspect_wh)
    w2 = h2 * aspect_wh
    return np.stack([cx - w2 / 2, cy - h2 / 2, cx + w2 / 2, cy + h2 / 2], axis=1)


def extract_crop(frame: np.ndarray, xyxy, sar: float = 1.0) -> np.ndarray:
    """The (256, 128, 3) BGR crop of one box: expanded to 1:2, padded where it leaves the frame.

    ``sar``: the frame's sample aspect ratio (displayed width of a stored pixel over its height). The
    box is grown to 1:2 in DISPLAYED proportions (``0.5 / sar`` in stored pixels), so the resize to
    128x256 also undoes the pixel stretch and the person keeps true proportions.
    """
    x1, y1, x2, y2 = expand_to_aspect(np.asarray(xyxy, np.float32), 0.5 / sar)[0]
    xa, ya, xb, yb = int(np.floor(x1)), int(np.floor(y1)), int(np.ceil(x2)), int(np.ceil(y2))
    xb, yb = max(xb, xa + 1), max(yb, ya + 1)
    h, w = frame.shape[:2]
    pad = (max(0, -ya), max(0, yb - h), max(0, -xa), max(0, xb - w))
    part = frame[max(0, ya) : min(h, yb), max(0, xa) : min(w, xb)]
    if any(pad):
        if part.size == 0:
            part = np.zeros((yb - ya, xb - xa, 3), np.uint8)
        else:
            part = cv2.copyMakeBorder(part, *pad, cv2.BORDER_CONSTANT, value=PAD_VALUE)
    interp = cv2.INTER_AREA if part.shape[0] > CROP_H else cv2.INTER_LINEAR
    return cv2.resize(part, (CROP_W, CROP_H), interpolation=interp)


def blur_score(crop: np.ndarray) -> float:
    """Sharpness: variance of the Laplacian of the grey 256x128 crop. HIGH means sharp, low means
    blurred or flat (comparable across crops because every crop has the same size). Stored in the
    ``crops.blur`` column under its historical name."""
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def encode_jpeg(crop: np.ndarray, quality: int = 95) -> bytes:
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV failing on a valid uint8 image
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()
