"""Shot boundaries: the first frame of each new shot, so the tracker can be reset at cuts.

Streaming detectors behind one protocol (:class:`ShotBoundaryDetector`), chosen by name from
:data:`SHOT_DETECTORS` with :func:`create_shot_detector`; :func:`detect_shot_cuts` runs one over a file;
:func:`score_cuts` scores a cut list against an editor's (F1 within a frame tolerance).
benchmarks/shots.py compares them (docs/benchmarks.md, "Shot boundaries").

The histogram detector (:class:`ShotCutDetector`, wrapped as "histogram"): each frame is reduced to a small HSV colour histogram (hue x saturation, plus a coarse value
histogram). A cut is declared when the Bhattacharyya distance to the previous frame is both above an
absolute floor and several times the recent typical distance. People walking through a static or
slowly panning shot change a few percent of the pixels and move the histogram little; a cut
replaces the whole palette.
"""

from __future__ import annotations

import inspect
import logging
import subprocess
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from portrait_builder.errors import UserError

log = logging.getLogger(__name__)


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


# ------------------------------------------------------------------------------------ streaming API
@runtime_checkable
class ShotBoundaryDetector(Protocol):
    """What the ingest pipeline feeds: EVERY decoded frame in order, already resized to ``frame_size``.

    ``push`` returns the cuts newly decided (first frame index of each new shot, 0-based, ascending);
    a detector with look-ahead decides later, and ``decided_until`` says up to which frame index every
    decision is final (-1 at the start). ``finish`` at the end of the video returns the remaining cuts.
    """

    name: str
    frame_size: tuple[int, int]  # (width, height) of the BGR uint8 frames it wants

    def push(self, index: int, frame: np.ndarray) -> list[int]: ...

    @property
    def decided_until(self) -> int: ...

    def finish(self) -> list[int]: ...

    def reset(self) -> None: ...


class HistogramShotDetector:
    """:class:`ShotCutDetector` on small frames: decides each frame as it comes (no look-ahead). The
    default size is what it has always seen (frames shrunk to 160 px on their longer side)."""

    name = "histogram"

    def __init__(self, frame_size: tuple[int, int] = (160, 90), config: ShotCutConfig | None = None):
        self.frame_size = _check_size(frame_size)
        self._detector = ShotCutDetector(config)
        self.reset()

    def reset(self) -> None:
        self._detector.reset()
        self._index = -1

    @property
    def decided_until(self) -> int:
        return self._index

    def push(self, index: int, frame: np.ndarray) -> list[int]:
        _check_order(self.name, self._index, index)
        self._index = index
        return [index] if self._detector.is_cut(frame) else []

    def finish(self) -> list[int]:
        return []


class SceneDetectShotDetector:
    """PySceneDetect's ContentDetector ("content") or AdaptiveDetector ("adaptive") with its defaults.

    Its defaults assume about 256 px wide frames (it downscales by ``width // 256``) and suppress a new
    cut within ``min_scene_len`` (15) frames of the last one.
    """

    def __init__(self, kind: str = "content", frame_size: tuple[int, int] = (256, 144), fps: float = 24.0, **detector_options):
        try:
            from scenedetect import AdaptiveDetector, ContentDetector
        except ImportError:  # pragma: no cover - it is in install_requires
            raise UserError("the content and adaptive shot detectors need PySceneDetect: pip install scenedetect-headless") from None
        classes = {"content": ContentDetector, "adaptive": AdaptiveDetector}
        if kind not in classes:
            raise UserError(f"unknown PySceneDetect detector {kind!r}; valid: {', '.join(classes)}")
        _check_options(kind, classes[kind].__init__, detector_options)
        self.name = kind
        self.frame_size = _check_size(frame_size)
        self._make = lambda: classes[kind](**detector_options)
        self._fps = float(fps)
        self.reset()

    def reset(self) -> None:
        self._detector = self._make()
        self._index = -1
        self._finished = False

    @property
    def decided_until(self) -> int:
        return self._index if self._finished else max(-1, self._index - self._detector.event_buffer_length)

    def push(self, index: int, frame: np.ndarray) -> list[int]:
        from scenedetect import FrameTimecode

        _check_order(self.name, self._index, index)
        self._index = index
        return [c.frame_num for c in self._detector.process_frame(FrameTimecode(index, self._fps), frame) if c.frame_num > 0]

    def finish(self) -> list[int]:
        from scenedetect import FrameTimecode

        if self._index < 0:
            return []
        cuts = [c.frame_num for c in self._detector.post_process(FrameTimecode(self._index, self._fps))]
        self._finished = True
        return [c for c in cuts if c > 0]


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    w, h = (int(v) for v in size)
    if w < 8 or h < 8:
        raise UserError(f"shot detector frame_size must be at least 8x8, got {w}x{h}")
    return w, h


def _check_order(name: str, last: int, index: int) -> None:
    if index != last + 1:
        raise ValueError(f"{name}: frames must be pushed in order from 0; expected {last + 1}, got {index}")


def _check_options(name: str, factory: Callable, options: dict) -> None:
    params = inspect.signature(factory).parameters
    valid = [p for p in params if p not in ("self", "args", "kwargs")]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UserError(f"shot detector {name!r}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(valid)}")


def iter_small_frames(path: str | Path, frame_size: tuple[int, int]):
    """Yield ``(index, bgr_frame)`` for every frame of ``path``, scaled to ``frame_size`` by ffmpeg
    (passthrough timing, as the decoder: one output frame per decoded frame)."""
    from portrait_builder.video import ffmpeg_exe

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such video file: {path}")
    w, h = _check_size(frame_size)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
           "-vf", f"scale={w}:{h}", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:"]  # fmt: skip
    size = w * h * 3
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        index = 0
        while True:
            buf = proc.stdout.read(size)
            if len(buf) < size:
                break
            yield index, np.frombuffer(buf, np.uint8).reshape(h, w, 3)
            index += 1
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        proc.stderr.close()
        rc = proc.wait()
    if rc not in (0, -9) and index == 0:
        raise UserError(f"cannot decode {path}: {err.splitlines()[-1] if err else f'ffmpeg exited with {rc}'}")


# ------------------------------------------------------------------------------------------ scoring
@dataclass(frozen=True)
class CutScore:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: CutScore) -> CutScore:
        return CutScore(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def score_cuts(predicted: Sequence[int], truth: Sequence[int], tolerance: int = 2) -> CutScore:
    """Match reported cuts one-to-one to true cuts within ``tolerance`` frames (maximum matching, then
    the smallest total distance: scipy's linear_sum_assignment). A true cut reported twice counts one
    true positive and one false positive, so a gradual transition must be reported once."""
    from scipy.optimize import linear_sum_assignment

    p = np.asarray(sorted(predicted), np.int64)
    t = np.asarray(sorted(truth), np.int64)
    if len(p) == 0 or len(t) == 0:
        return CutScore(0, len(p), len(t))
    dist = np.abs(p[:, None] - t[None, :])
    # Pairs out of tolerance cost more than any set of in-tolerance pairs, so the count is maximal first.
    cost = np.where(dist <= tolerance, dist, (tolerance + 1) * (len(p) + len(t)) + 1)
    rows, cols = linear_sum_assignment(cost)
    tp = int((dist[rows, cols] <= tolerance).sum())
    return CutScore(tp, len(p) - tp, len(t) - tp)
