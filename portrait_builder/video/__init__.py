"""Streaming video decode through ffmpeg: frames with their own index and timestamp, memory flat."""

from portrait_builder.video.decode import (
    DecodeError,
    Frame,
    VideoInfo,
    VideoReader,
    ffmpeg_exe,
    ffprobe_exe,
    probe,
)

__all__ = ["DecodeError", "Frame", "VideoInfo", "VideoReader", "ffmpeg_exe", "ffprobe_exe", "probe"]
