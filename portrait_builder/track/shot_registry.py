"""Shot-boundary detectors by name, and the cut list of a file with the default one.

Apart from :mod:`portrait_builder.track.shots` (the detectors) so that the learned detectors in
:mod:`portrait_builder.track.transnetv2`, which build on those, are imported only when chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from portrait_builder.errors import UserError
from portrait_builder.track.shots import (
    HistogramShotDetector,
    SceneDetectShotDetector,
    ShotBoundaryDetector,
    _check_options,
    iter_small_frames,
)


def _transnetv2(**options) -> ShotBoundaryDetector:
    from portrait_builder.track.transnetv2 import TransNetV2ShotDetector

    _check_options("transnetv2", TransNetV2ShotDetector.__init__, options)
    return TransNetV2ShotDetector(**options)


def _histogram(**options) -> ShotBoundaryDetector:
    _check_options("histogram", HistogramShotDetector.__init__, options)
    return HistogramShotDetector(**options)


def _hybrid(**options) -> ShotBoundaryDetector:
    from portrait_builder.track.transnetv2 import HybridShotDetector

    _check_options("hybrid", HybridShotDetector.__init__, options)
    return HybridShotDetector(**options)


#: name -> factory(**options)
SHOT_DETECTORS: dict[str, Callable[..., ShotBoundaryDetector]] = {
    "histogram": _histogram,
    "content": lambda **o: SceneDetectShotDetector("content", **o),
    "adaptive": lambda **o: SceneDetectShotDetector("adaptive", **o),
    "transnetv2": _transnetv2,
    "hybrid": _hybrid,
}
#: Chosen by F1 on the development film clip and synthetic cuts, fades and dissolves at a small share
#: of one core (benchmarks/shots.py; docs/benchmarks.md, "Shot boundaries").
DEFAULT_SHOT_DETECTOR = "hybrid"


def create_shot_detector(name: str = DEFAULT_SHOT_DETECTOR, **options) -> ShotBoundaryDetector:
    """A new shot-boundary detector by name (see :data:`SHOT_DETECTORS`)."""
    if name not in SHOT_DETECTORS:
        raise UserError(f"unknown shot detector {name!r}; valid: {', '.join(SHOT_DETECTORS)}")
    return SHOT_DETECTORS[name](**options)


def detect_shot_cuts(path: str | Path, name: str = DEFAULT_SHOT_DETECTOR, *, progress: bool = False, **options) -> list[int]:
    """The cut list of a video file: first frame index (0-based) of each new shot, ascending."""
    from tqdm import tqdm

    detector = create_shot_detector(name, **options)
    cuts: list[int] = []
    for index, frame in tqdm(iter_small_frames(path, detector.frame_size), desc=f"shot cuts ({name})", unit="frame", disable=not progress):
        cuts += detector.push(index, frame)
    cuts += detector.finish()
    return sorted(cuts)
