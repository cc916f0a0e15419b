"""Where a face box (source-frame pixels) lies in the stored 256x128 crop of its person."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from portrait_builder.ingest.crops import CROP_H, CROP_W, expand_to_aspect


def face_box_in_crop(box_xyxy: Sequence[float], face_xyxy: Sequence[float], sar: float = 1.0) -> np.ndarray:
    """The face box (source-frame pixels) in the pixels of the 256x128 crop cut from ``box_xyxy``.

    Mirrors :func:`portrait_builder.ingest.crops.extract_crop`: the box grown to 1:2 in displayed
    proportions, then each axis scaled to the crop's size. (4,) float32 xyxy.
    """
    x1, y1, x2, y2 = expand_to_aspect(np.asarray(box_xyxy, np.float32), 0.5 / sar)[0]
    sx, sy = CROP_W / max(float(x2 - x1), 1e-6), CROP_H / max(float(y2 - y1), 1e-6)
    f = np.asarray(face_xyxy, np.float32)
    return np.array([(f[0] - x1) * sx, (f[1] - y1) * sy, (f[2] - x1) * sx, (f[3] - y1) * sy], np.float32)
