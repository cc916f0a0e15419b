"""JDE's online association (Wang et al., "Towards Real-Time Multi-Object Tracking"), one frame per call.

``JDETracker.update`` reads as the reference's numbered steps: predict, embedding + gated motion,
IoU for the still-tracked, IoU for the unconfirmed, new tracks, lost buffer, duplicates. It takes a
:class:`Detections`, never mutates it, and returns the rows of that same input that belong to
confirmed tracks, with their track ids attached; ``last_detection_indices`` says which rows.
See docs/tracking.md for every threshold.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import asdict, dataclass

import numpy as np

from portrait_builder.boxes import xyah_to_xyxy, xyxy_to_xyah
from portrait_builder.common import config_from_mapping
from portrait_builder.detect.types import Detections
from portrait_builder.errors import UserError
from portrait_builder.track import matching
from portrait_builder.track.kalman import CHI2INV95, KalmanFilter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackerConfig:
    """Every threshold of the association. Defaults are JDE's (reference/JDE.md, "Tracker")."""

    #: Detections scoring below this never start a track (step 5). JDE drops them before tracking
    #: altogether; here they may still extend existing tracks unless ``min_score`` removes them.
    det_threshold: float = 0.5
    #: Detections scoring below this are ignored completely (0 keeps all: the detector's own
    #: threshold decides). Set it equal to ``det_threshold`` for JDE's exact behaviour.
    min_score: float = 0.0
    #: Step 2: cost limit of the fused embedding + motion assignment.
    embedding_limit: float = 0.7
    #: Step 3: a still-tracked track and a detection match when 1 - IoU < this.
    iou_limit: float = 0.5
    #: Step 4: an unconfirmed track and a detection match when 1 - IoU < this.
    unconfirmed_iou_limit: float = 0.7
    #: Weight lambda of the embedding distance in the fused cost; (1 - lambda) goes to the squared
    #: Mahalanobis distance.
    motion_weight: float = 0.98
    #: Squared Mahalanobis gate: chi-square 95% quantile, 4 degrees of freedom.
    gating_threshold: float = CHI2INV95[4]
    #: A lost track survives this many frames at ``reference_fps``; scaled by the tracker's frame rate.
    buffer_frames: int = 30
    reference_fps: float = 30.0
    #: Appearance smoothing: smooth = momentum * smooth + (1 - momentum) * feature, renormalised.
    momentum: float = 0.9
    #: A tracked/lost pair whose 1 - IoU is below this is a duplicate; the younger one is dropped.
    duplicate_iou_distance: float = 0.15
    #: Output filter (JDE demo): boxes with area <= this many px^2 are not returned.
    min_box_area: float = 200.0
    #: Output filter (JDE demo): boxes wider than this w/h are not returned.
    max_aspect_ratio: float = 1.6
    #: JDE's code confirms tracks born on the very first frame at once (reference/JDE.md does not).
    #: False: every track waits for a second matched frame, also right after ``reset()``.
    confirm_first_frame: bool = False
    #: Kalman noise weights relative to the box height.
    std_weight_position: float = 1.0 / 20
    std_weight_velocity: float = 1.0 / 160

    def __post_init__(self):
        for name in (
            "embedding_limit",
            "iou_limit",
            "unconfirmed_iou_limit",
            "gating_threshold",
            "reference_fps",
            "std_weight_position",
            "std_weight_velocity",
        ):
            if not getattr(self, name) > 0:
                raise UserError(f"tracker config: {name} must be > 0, got {getattr(self, name)!r}")
        for name in ("motion_weight", "momentum"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"tracker config: {name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.buffer_frames < 0:
            raise UserError(f"tracker config: buffer_frames must be >= 0, got {self.buffer_frames!r}")
        if not 0.0 <= self.duplicate_iou_distance <= 1.0:
            raise UserError(
                f"tracker config: duplicate_iou_distance must be in [0, 1], got {self.duplicate_iou_distance!r}"
            )
        if self.min_box_area < 0 or self.max_aspect_ratio <= 0:
            raise UserError("tracker config: min_box_area must be >= 0 and max_aspect_ratio > 0")

    def to_dict(self) -> dict:
        """Plain dict (for videos.params / reports)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrackerConfig:
        """Build from a (YAML) mapping; unknown keys are an error that lists the valid ones."""
        return config_from_mapping(cls, values, "tracker config")


class TrackState(enum.Enum):
    TRACKED = "tracked"
    LOST = "lost"


class _Track:
    """Internal per-track state. Unconfirmed tracks have ``track_id == -1`` until their second hit."""

    __slots__ = ("track_id", "mean", "cov", "smooth", "state", "confirmed", "start_frame", "last_frame")

    def __init__(self, mean, cov, feature, frame_id):
        self.track_id = -1
        self.mean = mean
        self.cov = cov
        self.smooth = feature
        self.state = TrackState.TRACKED
        self.confirmed = False
        self.start_frame = frame_id
        self.last_frame = frame_id

    @property
    def xyxy(self) -> np.ndarray:
        return xyah_to_xyxy(self.mean[:4])[0]


class JDETracker:
    """Online multi-person tracker with JDE's association.

    Args:
        config: thresholds (:class:`TrackerConfig`).
        frame_rate: rate of the frames given to :meth:`update` (with a track stride S, the video fps / S);
            scales the lost buffer.
        first_id: the first track id handed out; ids then increase by one per confirmed track and are
            never reused, also across :meth:`reset` (resume an ingest with ``first_id=previous next_id``).
    """

    def __init__(self, config: TrackerConfig | None = None, frame_rate: float = 30.0, first_id: int = 1):
        self.config = config if config is not None else TrackerConfig()
        if not frame_rate > 0:
            raise UserError(f"tracker: frame_rate must be > 0, got {frame_rate!r}")
        self.frame_rate = float(frame_rate)
        self.max_time_lost = int(self.frame_rate / self.config.reference_fps * self.config.buffer_frames)
        self.kalman = KalmanFilter(self.config.std_weight_position, self.config.std_weight_velocity)
        self._next_id = int(first_id)
        self._tracks: list[_Track] = []
        self._frame_id = 0
        self._frames_in_shot = 0
        self._dim: int | None = None
        #: (K,) int64: for each row returned by the last :meth:`update`, its row in that call's input.
        self.last_detection_indices = np.zeros(0, np.int64)

    # --- public state -------------------------------------------------------------------------
    @property
    def next_id(self) -> int:
        """The id the next confirmed track will get."""
        return self._next_id

    @property
    def frame_id(self) -> int:
        """Number of :meth:`update` calls so far (not reset by :meth:`reset`)."""
        return self._frame_id

    @property
    def num_tracks(self) -> int:
        """Tracks alive now (tracked, lost and unconfirmed); bounded, removed tracks are dropped."""
        return len(self._tracks)

    def track_ids(self, state: TrackState | None = None) -> list[int]:
        """Ids of the confirmed tracks alive now, optionally only those in ``state``."""
        return sorted(t.track_id for t in self._tracks if t.confirmed and (state is None or t.state is state))

    def reset(self) -> None:
        """End every track (a shot cut): nothing carries over, but ids keep increasing."""
        self._tracks = []
        self._frames_in_shot = 0
        self._dim = None
        self.last_detection_indices = np.zeros(0, np.int64)

    # --- the algorithm ------------------------------------------------------------------------
    def update(self, dets: Detections) -> Detections:
        """Associate one frame's detections; return the active confirmed tracks of this frame.

        The result holds the input rows (box, score, embedding exactly as given: a matched track
        reports its detection's box, not the Kalman estimate) of every confirmed track matched in this
        frame that passes the output filter, sorted by track id, with ``track_ids`` set.
        ``self.last_detection_indices`` gives each result row's index in ``dets``.
        """
        if not isinstance(dets, Detections):
            raise TypeError(f"JDETracker.update expects Detections, got {type(dets).__name__}")
        cfg = self.config
        self._frame_id += 1
        self._frames_in_shot += 1
        frame = self._frame_id

        det_index = np.flatnonzero(dets.scores >= cfg.min_score).astype(np.int64)
        boxes = dets.xyxy[det_index].astype(np.float64)
        scores = dets.scores[det_index]
        feats = matching.l2_normalise(dets.embeddings[det_index])
        if len(dets):
            if self._dim is None:
                self._dim = dets.embeddings.shape[1]
            elif dets.embeddings.shape[1] != self._dim:
                raise ValueError(f"embedding dimension changed from {self._dim} to {dets.embeddings.shape[1]}")
        xyah = xyxy_to_xyah(boxes).astype(np.float64) if len(boxes) else np.zeros((0, 4))
        # Each detection ends up in at most one of: a matched track, a new track, or nothing.
        owner: dict[int, _Track] = {}

        # (1) Predict every live track (tracked, lost, unconfirmed); lost tracks stop growing (vh = 0).
        self._predict(self._tracks)
        pool = [t for t in self._tracks if t.confirmed]
        unconfirmed = [t for t in self._tracks if not t.confirmed]

        # (2) Embedding distance, gated and fused with the Mahalanobis distance; lost tracks may return.
        remaining = np.arange(len(boxes))
        if pool and len(boxes):
            means = np.stack([t.mean for t in pool])
            covs = np.stack([t.cov for t in pool])
            emb_cost = matching.embedding_distance(np.stack([t.smooth for t in pool]), feats)
            gate = self.kalman.gating_distance(means, covs, xyah)
            cost = matching.fuse_motion(emb_cost, gate, cfg.gating_threshold, cfg.motion_weight)
            matches, u_pool, u_det = matching.linear_assignment(cost, cfg.embedding_limit)
            self._correct([pool[r] for r in matches[:, 0]], matches[:, 1], xyah, feats, owner)
            remaining = u_det
            pool_left = [pool[r] for r in u_pool]
        else:
            pool_left = pool

        # (3) Still-tracked tracks vs the remaining detections by IoU; the unmatched become lost.
        tracked_left = [t for t in pool_left if t.state is TrackState.TRACKED]
        cost = matching.iou_distance(self._boxes(tracked_left), boxes[remaining])
        matches, u_tracked, u_det = matching.linear_assignment(cost, cfg.iou_limit)
        self._correct([tracked_left[r] for r in matches[:, 0]], remaining[matches[:, 1]], xyah, feats, owner)
        for r in u_tracked:
            tracked_left[r].state = TrackState.LOST
        remaining = remaining[u_det]

        # (4) Unconfirmed tracks vs what is left by IoU; a match confirms, no match removes.
        cost = matching.iou_distance(self._boxes(unconfirmed), boxes[remaining])
        matches, u_unconf, u_det = matching.linear_assignment(cost, cfg.unconfirmed_iou_limit)
        confirmed_now = [unconfirmed[r] for r in matches[:, 0]]
        self._correct(confirmed_now, remaining[matches[:, 1]], xyah, feats, owner)
        dead = {id(unconfirmed[r]) for r in u_unconf}
        remaining = remaining[u_det]

        # (5) New (unconfirmed) tracks from confident leftover detections.
        new_rows = remaining[scores[remaining] >= cfg.det_threshold]
        born = []
        if len(new_rows):
            means, covs = self.kalman.initiate(xyah[new_rows])
            for k, row in enumerate(new_rows):
                track = _Track(means[k], covs[k], feats[row], frame)
                owner[int(row)] = track
                born.append(track)
                if cfg.confirm_first_frame and self._frames_in_shot == 1:
                    confirmed_now.append(track)
        # Ids are spent only on confirmed tracks, in detection order, so they stay dense-ish.
        for track in sorted(confirmed_now, key=lambda t: t.start_frame):
            if not track.confirmed:
                track.confirmed = True
                track.track_id = self._next_id
                self._next_id += 1

        # (6) Lost tracks older than the buffer are removed.
        for t in self._tracks:
            if t.state is TrackState.LOST and frame - t.last_frame > self.max_time_lost:
                dead.add(id(t))
        self._tracks = [t for t in self._tracks if id(t) not in dead] + born

        # (7) Duplicates: a tracked/lost pair overlapping almost fully; keep the one tracked longer.
        self._remove_duplicates()

        alive = {id(t) for t in self._tracks}
        rows = [
            (t.track_id, row)
            for row, t in owner.items()
            if id(t) in alive and t.confirmed and t.state is TrackState.TRACKED and t.last_frame == frame
        ]
        rows.sort()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        idx = det_index[np.array([r[1] for r in rows], dtype=np.int64)] if rows else np.zeros(0, np.int64)
        keep = self._output_filter(dets.xyxy[idx])
        self.last_detection_indices = idx[keep]
        return dets[self.last_detection_indices].with_track_ids(ids[keep])

    # --- helpers ------------------------------------------------------------------------------
    def _predict(self, tracks: list[_Track]) -> None:
        if not tracks:
            return
        means = np.stack([t.mean for t in tracks])
        covs = np.stack([t.cov for t in tracks])
        lost = np.array([t.state is TrackState.LOST for t in tracks])
        means[lost, 7] = 0.0  # JDE multi_predict: a lost track's height velocity is frozen
        means, covs = self.kalman.predict(means, covs)
        for t, m, c in zip(tracks, means, covs, strict=True):
            t.mean, t.cov = m, c

    def _correct(self, tracks: list[_Track], rows: np.ndarray, xyah, feats, owner: dict) -> None:
        """Kalman-update matched tracks with their detections (batched) and refresh their features."""
        if not tracks:
            return
        means, covs = self.kalman.update(
            np.stack([t.mean for t in tracks]), np.stack([t.cov for t in tracks]), xyah[rows]
        )
        m = self.config.momentum
        for t, row, mean, cov in zip(tracks, rows, means, covs, strict=True):
            t.mean, t.cov = mean, cov
            t.state = TrackState.TRACKED  # re-activates a lost track with its old id
            t.last_frame = self._frame_id
            if feats.shape[1]:
                smooth = m * t.smooth + (1.0 - m) * feats[row]
                t.smooth = smooth / max(float(np.linalg.norm(smooth)), 1e-12)
            owner[int(row)] = t

    @staticmethod
    def _boxes(tracks: list[_Track]) -> np.ndarray:
        if not tracks:
            return np.zeros((0, 4))
        return xyah_to_xyxy(np.stack([t.mean[:4] for t in tracks])).astype(np.float64)

    def _remove_duplicates(self) -> None:
        tracked = [t for t in self._tracks if t.state is TrackState.TRACKED]
        lost = [t for t in self._tracks if t.state is TrackState.LOST]
        if not tracked or not lost:
            return
        dist = matching.iou_distance(self._boxes(tracked), self._boxes(lost))
        drop = set()
        for p, q in zip(*np.nonzero(dist < self.config.duplicate_iou_distance), strict=True):
            age_p = tracked[p].last_frame - tracked[p].start_frame
            age_q = lost[q].last_frame - lost[q].start_frame
            # JDE: the lost one goes only when the tracked one is strictly older.
            drop.add(id(lost[q]) if age_p > age_q else id(tracked[p]))
        if drop:
            self._tracks = [t for t in self._tracks if id(t) not in drop]

    def _output_filter(self, xyxy: np.ndarray) -> np.ndarray:
        w = xyxy[:, 2] - xyxy[:, 0]
        h = xyxy[:, 3] - xyxy[:, 1]
        return (w * h > self.config.min_box_area) & (w <= self.config.max_aspect_ratio * h)
