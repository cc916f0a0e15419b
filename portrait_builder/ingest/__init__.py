"""Ingest orchestration: decode, detect, track and crop a video into the project store.

``ingest_video(project, path, IngestConfig(...), progress=True) -> dict`` (the per-video report) and
``doctor(project, repair=False) -> dict`` (orphan and missing crop files).
``create_executor("local" | "ray", ...).run(project, [VideoRequest(path, config)], progress)`` yields
``(request, report)`` per video; the ray executor distributes videos over a Ray cluster. Batches of rows
travel as :class:`CommitBatch` of :class:`TrackRow` and :class:`CropRow` (frozen, picklable).
"""

from portrait_builder.ingest.config import IngestConfig, load_ingest_yaml
from portrait_builder.ingest.crops import CROP_H, CROP_W, blur_score, expand_to_aspect, extract_crop
from portrait_builder.ingest.doctor import doctor
from portrait_builder.ingest.executors import EXECUTORS, VideoRequest, create_executor, executor_names
from portrait_builder.ingest.pipeline import (
    CommitBatch,
    CropRow,
    TrackRow,
    VideoJob,
    commit_batch,
    crop_relpath,
    ingest_video,
    produce_video,
)

__all__ = [
    "EXECUTORS",
    "CommitBatch",
    "CropRow",
    "TrackRow",
    "VideoJob",
    "VideoRequest",
    "commit_batch",
    "create_executor",
    "executor_names",
    "produce_video",
    "CROP_H",
    "CROP_W",
    "IngestConfig",
    "blur_score",
    "crop_relpath",
    "doctor",
    "expand_to_aspect",
    "extract_crop",
    "ingest_video",
    "load_ingest_yaml",
]
