"""Hard shot-cut detection between consecutive processed frames, so the tracker can be reset at cuts.

Each frame is reduced to a small HSV colour histogram (hue x saturation, plus a coarse value
histogram). A cut is declared when the Bhattacharyya distance to the previous frame is both above an
absolute floor and several times the recent typical distance. People walking through a static or
slowly panning shot change a few percent of the pixels and move the histogram little; a cut
replaces the whole palette.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from portrait_builder.errors import UserError


@dataclass(frozen=True)
class ShotCutConfig:
    #: Frames are shrunk so their longer side is at most this (speed; histograms barely change).
    max_side: int = 160
    hue_bins: int = 16
    saturation_bins: int = 8
    value_bins: int = 8
    #: A distance below this is never a cut (Bhattacharyya distance in [0, 1]).
    min_distance: float = 0.2
    #: ... and it must exceed ``adaptive_factor`` times the median of the recent distances.
    adaptive_factor: float = 3.0
    #: Number of recent frame-to-frame distances in that median.
    history: int = 25
    #: Frames after a cut during which no further cut is reported (flashes, fades' last frames).
    min_shot_frames: int = 3

    def __post_init__(self):
        if not 0 < self.min_distance <= 1:
            raise UserError(f"shot-cut config: min_distance must be in (0, 1], got {self.min_distance!r}")
        if self.adaptive_factor < 1 or self.history < 1 or self.min_shot_frames < 0 or self.max_side < 8:
            raise UserError(
                "shot-cut config: need adaptive_factor >= 1, history >= 1, min_shot_frames >= 0, max_side >= 8"
            )


class ShotCutDetector:
    """Stateful: feed every processed frame, in order, to :meth:`is_cut`.

    ``is_cut`` is False for the first frame. Call :meth:`reset` between videos.
    """

    def __init__(self, config: ShotCutConfig | None = None):
        self.config = config if config is not None else ShotCutConfig()
        self.reset()

    def reset(self) -> None:
        self._previous: np.ndarray | None = None
        self._recent: deque[float] = deque(maxlen=self.config.history)
        self._since_cut = 0
        #: Bhattacharyya distance between the last two frames (0.0 for the first frame).
        self.last_distance = 0.0

    def histogram(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The frame's signature: concatenated, each-part-normalised H-S and V histograms (float32)."""
        frame = np.asarray(frame_bgr)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 BGR frame, got {frame.shape} {frame.dtype}")
        cfg = self.config
        h, w = frame.shape[:2]
        scale = cfg.max_side / max(h, w)
        if scale < 1:
            frame = cv2.resize(
                frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
            )
        hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)
        hs = cv2.calcHist([hsv], [0, 1], None, [cfg.hue_bins, cfg.saturation_bins], [0, 180, 0, 256]).ravel()
        v = cv2.calcHist([hsv], [2], None, [cfg.value_bins], [0, 256]).ravel()
        return np.concatenate([hs / max(hs.sum(), 1.0), v / max(v.sum(), 1.0)]).astype(np.float32)

    def distance(self, hist_a: np.ndarray, hist_b: np.ndarray) -> float:
        """Mean Bhattacharyya distance of the H-S part and the V part, in [0, 1]."""
        n = self.config.hue_bins * self.config.saturation_bins
        d_hs = cv2.compareHist(hist_a[:n], hist_b[:n], cv2.HISTCMP_BHATTACHARYYA)
        d_v = cv2.compareHist(hist_a[n:], hist_b[n:], cv2.HISTCMP_BHATTACHARYYA)
        return float(0.5 * (d_hs + d_v))

    def is_cut(self, frame_bgr: np.ndarray) -> bool:
        """True when this frame starts a new shot."""
        hist = self.histogram(frame_bgr)
        previous, self._previous = self._previous, hist
        self._since_cut += 1
        if previous is None:
            self.last_distance = 0.0
            return False
        d = self.distance(previous, hist)
        self.last_distance = d
        cfg = self.config
        typical = float(np.median(self._recent)) if self._recent else 0.0
        cut = d > cfg.min_distance and d > cfg.adaptive_factor * typical and self._since_cut > cfg.min_shot_frames
        if cut:
            # The new shot's own statistics start fresh; the cut distance is not "typical".
            self._recent.clear()
            self._since_cut = 0
        else:
            self._recent.append(d)
        return cut
