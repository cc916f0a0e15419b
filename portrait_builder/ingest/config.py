"""Ingest settings: a frozen dataclass in the library; YAML and flags are parsed at the CLI edge."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from portrait_builder.common import config_from_mapping
from portrait_builder.errors import UserError

#: ``track_stride: 0`` processes about this many frames per second of video ...
AUTO_TRACK_RATE = 8.0
#: ... with a stride of at most this (beyond it the tracker's motion model bridges too long gaps).
MAX_AUTO_STRIDE = 3


@dataclass(frozen=True)
class IngestConfig:
    """How to ingest a video.

    detector / weights / device / detector_options: which backend (``create_detector`` arguments).
    track_stride: detect and track every S-th decoded frame (the others never reach Python; shot cuts
        are still found on every frame, from thumbnails). 0 (the default): from the frame rate, see
        :meth:`stride_for` (3 for 24-30 fps film, 1 for PETS09's 7 fps).
    crop_every: crops are taken at every N-th processed frame (source index a multiple of
        ``track_stride * crop_every``), for every tracked person at once.
    working_size: detection runs on frames scaled down by ffmpeg so that their longer side (in square
        pixels) is this; 0 keeps the picture's own size. Boxes are stored in source pixels.
    letterbox: find black bars once per video and keep them out of detection.
    shot_detector: shot boundary detector name (None: the default of ``portrait_builder.track``).
    min_height: tracked boxes shorter than this (source pixels) get no crop.
    min_score: tracked boxes scoring below this get no crop.
    commit_every: processed frames per store transaction (crash loses at most this many).
    jpeg_quality: crop JPEG quality.
    queue_size: bound of each inter-stage queue (frames), so memory stays flat.
    shot_cuts: reset the tracker at detected shot cuts.
    tracker: ``TrackerConfig`` keyword overrides. Default: ``confirm_first_frame`` (as JDE's own code
        does): a shot opens with its people in view, and at stride 3 waiting for a second match loses
        the first processed frame after every cut (Tears of Steel dev clip, stride 3: recall 0.84 -> 0.88,
        precision 0.977 -> 0.978; docs/benchmarks.md "Film ingest speed").
    mot_out: write every tracked box of every processed frame here (MOTChallenge, 1-based frames).
    """

    detector: str = "film"
    weights: str | None = None
    device: str = "auto"
    detector_options: dict = field(default_factory=dict)
    track_stride: int = 0
    crop_every: int = 5
    working_size: int = 640
    letterbox: bool = True
    shot_detector: str | None = None
    min_height: float = 48.0
    min_score: float = 0.0
    commit_every: int = 25
    jpeg_quality: int = 95
    queue_size: int = 16
    shot_cuts: bool = True
    tracker: dict = field(default_factory=lambda: {"confirm_first_frame": True})
    mot_out: str | None = None

    def __post_init__(self):
        if self.track_stride < 0:
            raise UserError("ingest: track_stride must be >= 1, or 0 to choose it from the frame rate")
        if self.crop_every < 1 or self.commit_every < 1 or self.queue_size < 1:
            raise UserError("ingest: crop_every, commit_every and queue_size must be >= 1")
        if self.working_size < 0:
            raise UserError("ingest: working_size must be >= 0 (0: the picture's own size)")
        if self.min_height < 0 or not 0 <= self.min_score <= 1:
            raise UserError("ingest: min_height must be >= 0 and min_score in [0, 1]")
        if not 1 <= self.jpeg_quality <= 100:
            raise UserError("ingest: jpeg_quality must be in 1..100")

    def stride_for(self, fps: float) -> int:
        """The stride used for a video of ``fps``: ``track_stride``, or with 0 about ``AUTO_TRACK_RATE``
        processed frames per second of video, at most ``MAX_AUTO_STRIDE``.

        Why: the detector is the cost, and what tracking needs is a rate in time, not in frames; 8 per
        second keeps a 1080p 24 fps film above 1.5x real time on two cores with the default detector
        (docs/benchmarks.md, "Film ingest speed") while a walking person moves a fraction of their width
        between processed frames. Low-rate footage (PETS09 at 7 fps, the synthetic clips at 10 fps) keeps
        every frame: there every frame is needed to track at all.
        """
        if self.track_stride:
            return self.track_stride
        if not fps or fps <= 0:
            return 1
        return max(1, min(MAX_AUTO_STRIDE, int(fps // AUTO_TRACK_RATE)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: dict) -> IngestConfig:
        return config_from_mapping(cls, values, "ingest config")


def load_ingest_yaml(path: str | Path | None = None) -> dict:
    """The defaults of ``pipelines/ingest.yaml`` (or ``path``) as a mapping for :meth:`IngestConfig.from_mapping`."""
    if path is None:
        from portrait_builder.resources import pipelines_dir

        path = pipelines_dir() / "ingest.yaml"
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read ingest settings {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of ingest settings")
    return data
