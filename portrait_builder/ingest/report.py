"""What ingest hands back per video: :class:`ProducedVideo` (the production counters of one run of
``produce_video``, picklable so a Ray worker can return them) and :class:`VideoReport` (the per-video
report ``ingest_video`` and the executors return; ``to_dict()`` is the JSON written to
``PROJECT/reports/<id>_<stem>.json`` and stored in ``videos.report``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from portrait_builder.ingest.config import IngestConfig

#: ``done``: every frame ingested; ``partial``: the stream broke off, the crops before the bad point are
#: kept; ``failed``: nothing of this run was committed (the Ray executor after its last retry).
VideoStatus = Literal["done", "partial", "failed"]


@dataclass(frozen=True)
class DetectorIdentity:
    """Which model produced the crops: the registry name and the weights' (or parameters') sha256."""

    name: str
    fingerprint: str


@dataclass(frozen=True)
class VideoProperties:
    """The stream as probed: stored size, frame rate, declared frame count and sample aspect ratio."""

    width: int
    height: int
    fps: float
    frame_count: int | None
    sar: float


@dataclass(frozen=True)
class IngestTotals:
    """Counters summed over every run of one video (a resumed video is ingested in several runs)."""

    frames_processed: int
    detections: int
    tracks: int
    crops: int


@dataclass(frozen=True)
class RayRun:
    """Where the Ray executor produced a video: the worker's node and the crop rows the driver inserted."""

    node: str | None
    rows_inserted: int


@dataclass(frozen=True)
class ProducedVideo:
    """The counters of one ``produce_video`` run (no store access; picklable).

    ``frames_decoded`` counts from the resume point; ``seconds``: per stage (letterbox, decode, detect,
    crop, shots, track, write, phash, commit); ``error``: a truncated or corrupt stream, the frames before it
    are produced; ``picture_area`` (x, y, width, height), ``working_size`` (width, height) and ``sar``: the
    geometry used.
    """

    frames_decoded: int
    frames_processed: int
    detections: int
    tracked_boxes: int
    tracks: int
    crops: int
    shots: int
    shot_cuts: tuple[int, ...]
    shot_detector: str | None
    picture_area: tuple[int, int, int, int]
    sar: float
    working_size: tuple[int, int]
    track_stride: int
    seconds: Mapping[str, float]
    error: str | None
    detector: DetectorIdentity


@dataclass(frozen=True)
class VideoReport:
    """The report of one video in one call of ``ingest_video`` or an executor.

    A video this call ingested (``done`` or ``partial``) has every field. A ``skipped`` one (already
    ``done``: same content fingerprint; ``duplicate_of`` names the request it repeats when one run named it
    twice) and a ``failed`` one ingested nothing here: their counters are 0 and the sections that describe a
    run (``picture_area`` to ``cumulative``) are None.

    ``seconds``: per stage plus ``wall``; ``fps_end_to_end``: processed frames per wall second;
    ``realtime_ratio``: seconds of video ingested per wall second; ``cumulative``: totals over every run of
    the video; ``ray``: set by the Ray executor.
    """

    video_id: int
    path: str
    fingerprint: str
    status: VideoStatus
    error: str | None = None
    resumed_from_frame: int | None = None
    frames_decoded: int = 0
    frames_processed: int = 0
    detections: int = 0
    tracked_boxes: int = 0
    tracks: int = 0
    crops: int = 0
    shots: int = 0
    shot_cuts: tuple[int, ...] = ()
    shot_detector: str | None = None
    picture_area: tuple[int, int, int, int] | None = None
    working_size: tuple[int, int] | None = None
    track_stride: int | None = None
    seconds: Mapping[str, float] = field(default_factory=dict)
    fps_end_to_end: float | None = None
    realtime_ratio: float | None = None
    detector: DetectorIdentity | None = None
    video: VideoProperties | None = None
    config: IngestConfig | None = None
    cumulative: IngestTotals | None = None
    skipped: bool = False
    duplicate_of: str | None = None
    ray: RayRun | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, keys in field order: ``skipped``, ``duplicate_of`` and the Ray keys
        (``executor``, ``node``, ``rows_inserted``) only where they apply, so the report file of a run
        holds exactly the keys of the fields above."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        del out["ray"]
        if not self.skipped:
            del out["skipped"]
        if self.duplicate_of is None:
            del out["duplicate_of"]
        if self.ray is not None:
            out.update(executor="ray", node=self.ray.node, rows_inserted=self.ray.rows_inserted)
        return out
