"""Weight-free appearance embedding: HSV colour histograms over horizontal body stripes.

Stripes keep the vertical layout (head / torso / legs colours) that tells people apart; square roots
of the normalised counts (Hellinger) make the cosine distance the tracker uses behave like the
Bhattacharyya distance between histograms.
"""

from __future__ import annotations

import cv2
import numpy as np

STRIPES = 6
H_BINS, S_BINS, V_BINS = 12, 4, 4
EMBEDDING_DIM = STRIPES * (H_BINS + S_BINS + V_BINS)
# Histograms are taken on a fixed-size resample of the box: cheap and independent of the person's size.
PATCH_HW = (96, 32)


def stripe_embeddings(frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, EMBEDDING_DIM) float32 L2-normalised embeddings of ``boxes`` (xyxy) in a BGR ``frame``."""
    n = len(boxes)
    out = np.zeros((n, EMBEDDING_DIM), np.float32)
    if n == 0:
        return out
    h, w = frame.shape[:2]
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float32)):
        xa, ya = int(max(0, np.floor(x1))), int(max(0, np.floor(y1)))
        xb, yb = int(min(w, np.ceil(x2))), int(min(h, np.ceil(y2)))
        if xb - xa < 2 or yb - ya < 2:
            out[i, 0] = 1.0
            continue
        patch = cv2.resize(frame[ya:yb, xa:xb], (PATCH_HW[1], PATCH_HW[0]), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(patch, cv2.COLOR_BGR2HSV)
        stripe_h = PATCH_HW[0] // STRIPES
        feats = []
        for s in range(STRIPES):
            part = hsv[s * stripe_h : (s + 1) * stripe_h]
            feats.append(cv2.calcHist([part], [0], None, [H_BINS], [0, 180]).ravel())
            feats.append(cv2.calcHist([part], [1], None, [S_BINS], [0, 256]).ravel())
            feats.append(cv2.calcHist([part], [2], None, [V_BINS], [0, 256]).ravel())
        v = np.sqrt(np.concatenate(feats) / (stripe_h * PATCH_HW[1]))
        out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out
