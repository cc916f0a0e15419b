"""Multi-person tracking: Kalman filter, cost-matrix matching, JDE's association, shot-cut detection,
and MOT metrics."""

from portrait_builder.track.kalman import CHI2INV95, KalmanFilter
from portrait_builder.track.shots import ShotCutConfig, ShotCutDetector
from portrait_builder.track.tracker import JDETracker, TrackerConfig, TrackState

__all__ = [
    "CHI2INV95",
    "JDETracker",
    "KalmanFilter",
    "ShotCutConfig",
    "ShotCutDetector",
    "TrackState",
    "TrackerConfig",
]
