"""Streaming video decode through ffmpeg: frames with their own index and timestamp, memory flat.

``VideoReader``: full frames of one stream. ``FilmDecoder``: what film ingest reads (working-size frames,
thumbnails of every frame, full-resolution frames on a schedule) from one ffmpeg process.
``detect_picture_area``: letterbox bars, found once per video.
"""

from portrait_builder.video.decode import (
    DecodeError,
    Frame,
    VideoInfo,
    VideoReader,
    ffmpeg_exe,
    ffprobe_exe,
    probe,
)
from portrait_builder.video.letterbox import PictureArea, detect_picture_area
from portrait_builder.video.streams import FilmDecoder, StreamPlan, working_size

__all__ = [
    "DecodeError",
    "FilmDecoder",
    "Frame",
    "PictureArea",
    "StreamPlan",
    "VideoInfo",
    "VideoReader",
    "detect_picture_area",
    "ffmpeg_exe",
    "ffprobe_exe",
    "probe",
    "working_size",
]
