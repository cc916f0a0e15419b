"""Ingest orchestration: decode, detect, track and crop a video into the project store.

``ingest_video(project, path, IngestConfig(...), progress=True) -> dict`` (the per-video report) and
``doctor(project, repair=False) -> dict`` (orphan and missing crop files).
"""

from portrait_builder.ingest.config import IngestConfig, load_ingest_yaml
from portrait_builder.ingest.crops import CROP_H, CROP_W, blur_score, expand_to_aspect, extract_crop
from portrait_builder.ingest.doctor import doctor
from portrait_builder.ingest.pipeline import crop_relpath, file_fingerprint, ingest_video

__all__ = [
    "CROP_H",
    "CROP_W",
    "IngestConfig",
    "blur_score",
    "crop_relpath",
    "doctor",
    "expand_to_aspect",
    "extract_crop",
    "file_fingerprint",
    "ingest_video",
    "load_ingest_yaml",
]
