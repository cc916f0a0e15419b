"""Decoding streams: peak memory does not grow with the length of the video."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from portrait_builder.video.decode import ffmpeg_exe

PROBE = textwrap.dedent(
    """
    import resource, sys
    from portrait_builder.video import VideoReader
    n = 0
    for frame in VideoReader(sys.argv[1], stride=int(sys.argv[2])):
        n += 1
    print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
    """
)


def _clip(path, seconds: int) -> None:
    # ffmpeg's own test pattern: a real h264 stream with no rendering cost in Python
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
                    "-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", str(path)],
                   check=True, timeout=300)


def _peak(path, stride: int = 1) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(path), str(stride)], capture_output=True, text=True,
                         check=True, timeout=600).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.slow
def test_peak_memory_is_flat_in_video_length(tmp_path):
    short, long = tmp_path / "short.mp4", tmp_path / "long.mp4"
    _clip(short, 4)
    _clip(long, 40)
    n_short, rss_short = _peak(short)
    n_long, rss_long = _peak(long)
    assert (n_short, n_long) == (100, 1000)
    # 900 more 640x360 frames would be ~620 MiB if they were kept; allow 16 MiB of noise
    assert rss_long - rss_short < 16 * 1024, (rss_short, rss_long)
    # frames the tracker does not need never reach Python: stride 5 yields a fifth of the frames
    assert _peak(long, stride=5)[0] == 200
