"""Multi-person tracking: Kalman filter, cost-matrix matching, JDE's association, shot-cut detection,
and MOT metrics."""

from portrait_builder.track.kalman import CHI2INV95, KalmanFilter
from portrait_builder.track.shot_registry import (
    DEFAULT_SHOT_DETECTOR,
    SHOT_DETECTORS,
    create_shot_detector,
    detect_shot_cuts,
)
from portrait_builder.track.shots import (
    CutScore,
    ShotBoundaryDetector,
    ShotCutConfig,
    ShotCutDetector,
    score_cuts,
)
from portrait_builder.track.tracker import JDETracker, TrackerConfig, TrackState

__all__ = [
    "CHI2INV95",
    "DEFAULT_SHOT_DETECTOR",
    "SHOT_DETECTORS",
    "CutScore",
    "ShotBoundaryDetector",
    "create_shot_detector",
    "detect_shot_cuts",
    "score_cuts",
    "JDETracker",
    "KalmanFilter",
    "ShotCutConfig",
    "ShotCutDetector",
    "TrackState",
    "TrackerConfig",
]
