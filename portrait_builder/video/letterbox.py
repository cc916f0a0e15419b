"""Find the picture area of a letterboxed (or pillarboxed) video once, from frames spread over it.

Black bars carry no people; cropping them before detection gives the detector more pixels of the
picture at the same working size. How (and why):
- Samples are the video's keyframes (``-skip_frame nokey``: only keyframes are decoded, so the cost is
  one demux pass plus a few hundred intra frames for a feature film, seconds against an hour of
  ingest), thinned inside ffmpeg to about ``samples`` frames spread evenly over the duration.
- A row (column) is picture when, in ANY sample, its brightest grey pixel exceeds ``BLACK_LEVEL``:
  a dark scene then never eats into the picture as long as one sample is bright there.
- Bars are taken symmetric: top and bottom both become the smaller of the two dark bands (left and
  right the same). Letterbox bars are symmetric; a one-sided dark band (a night sky, a black wall) is
  picture, and cropping the smaller band keeps it.
- Bars narrower than ``MIN_BAR_FRACTION`` of the side are ignored (compression ringing, dark edges),
  and crops are rounded to even pixels (chroma-subsampled sources crop on even lines).
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from portrait_builder.video.decode import VideoInfo, ffmpeg_exe

log = logging.getLogger(__name__)

#: Grey level (0-255, full range after ffmpeg's conversion) a bar row never exceeds. Limited-range
#: black is 16 and lands near 0; compression noise in a bar stays well below this.
BLACK_LEVEL = 40
#: A band thinner than this fraction of the frame side is not a bar.
MIN_BAR_FRACTION = 0.02
DEFAULT_SAMPLES = 12


@dataclass(frozen=True)
class PictureArea:
    """The region of the stored frame that holds the picture, in stored (source) pixels."""

    x: int
    y: int
    width: int
    height: int

    @classmethod
    def full(cls, info: VideoInfo) -> PictureArea:
        return cls(0, 0, info.width, info.height)

    def is_full(self, info: VideoInfo) -> bool:
        return (self.x, self.y, self.width, self.height) == (0, 0, info.width, info.height)

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.width, self.height]


def sample_frames(path: str | Path, info: VideoInfo, samples: int = DEFAULT_SAMPLES) -> np.ndarray:
    """(K, H, W) uint8 grey keyframes spread over the video (K <= about ``samples``; 0 for no keyframe)."""
    spacing = (info.duration or 0.0) / max(1, samples)
    vf = f"select='isnan(prev_selected_t)+gte(t-prev_selected_t\\,{spacing:.3f})'" if spacing > 0 else "null"
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-nostdin", "-loglevel", "error", "-skip_frame", "nokey",
           "-i", str(path), "-map", "0:v:0", "-vf", vf, "-frames:v", str(samples), "-fps_mode", "passthrough",
           "-f", "rawvideo", "-pix_fmt", "gray", "pipe:"]
    res = subprocess.run(cmd, capture_output=True)
    size = info.width * info.height
    n = len(res.stdout) // size
    if res.returncode != 0:
        log.warning("letterbox sampling of %s failed: %s", path, res.stderr.decode("utf-8", "replace").strip()[-200:])
    return np.frombuffer(res.stdout[: n * size], np.uint8).reshape(n, info.height, info.width)


def picture_area_of(frames: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, width, height) of the picture in a (K, H, W) grey stack, or None when no sample shows any."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or len(frames) == 0:
        return None
    _, h, w = frames.shape
    bright = frames.max(axis=0) > BLACK_LEVEL  # (H, W): picture somewhere in some sample
    rows, cols = np.flatnonzero(bright.any(axis=1)), np.flatnonzero(bright.any(axis=0))
    if len(rows) == 0 or len(cols) == 0:
        return None
    bar_y = _bar(int(rows[0]), h - 1 - int(rows[-1]), h)
    bar_x = _bar(int(cols[0]), w - 1 - int(cols[-1]), w)
    return bar_x, bar_y, w - 2 * bar_x, h - 2 * bar_y


def _bar(first: int, last: int, side: int) -> int:
    bar = min(first, last)
    if bar < MIN_BAR_FRACTION * side:
        return 0
    return bar - bar % 2


def detect_picture_area(path: str | Path, info: VideoInfo, samples: int = DEFAULT_SAMPLES) -> PictureArea:
    """The picture area of ``path`` (the whole frame when there are no bars or nothing could be sampled)."""
    area = picture_area_of(sample_frames(path, info, samples))
    if area is None:
        return PictureArea.full(info)
    return PictureArea(*area)
