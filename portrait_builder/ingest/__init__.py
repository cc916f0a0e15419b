"""Ingest orchestration: decode, detect, track and crop a video into the project store.

``ingest_video(project, path, IngestConfig(...), progress=True) -> VideoReport`` (the per-video report;
read its attributes, ``report.to_dict()`` is the JSON of ``PROJECT/reports/``) and
``doctor(project, repair=False) -> dict`` (orphan and missing crop files).
``create_executor("local" | "ray", ...).run(project, [VideoRequest(path, config)], progress)`` yields
``(request, VideoReport)`` per video; the ray executor distributes videos over a Ray cluster.
``produce_video(job, sink, detector=...) -> ProducedVideo`` is the store-free part: it hands batches of rows
to ``sink`` (a :class:`CommitSink`, e.g. ``commit_batch`` bound to a project) as :class:`CommitBatch` of
:class:`TrackRow` and :class:`CropRow`. All of these are frozen dataclasses (picklable).
"""

from portrait_builder.ingest.config import IngestConfig, load_ingest_yaml
from portrait_builder.ingest.crops import CROP_H, CROP_W, blur_score, expand_to_aspect, extract_crop
from portrait_builder.ingest.doctor import doctor
from portrait_builder.ingest.executors import EXECUTORS, VideoRequest, create_executor, executor_names
from portrait_builder.ingest.pipeline import (
    CommitBatch,
    CommitSink,
    CropRow,
    TrackRow,
    VideoJob,
    commit_batch,
    crop_relpath,
    ingest_video,
    produce_video,
)
from portrait_builder.ingest.report import ProducedVideo, VideoReport

__all__ = [
    "EXECUTORS",
    "CommitBatch",
    "CommitSink",
    "CropRow",
    "ProducedVideo",
    "TrackRow",
    "VideoJob",
    "VideoReport",
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
