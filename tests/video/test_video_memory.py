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
    from portrait_builder.video import FilmDecoder, PictureArea, StreamPlan, VideoReader, probe
    n = 0
    stride = int(sys.argv[2])
    if sys.argv[3] == "reader":
        for frame in VideoReader(sys.argv[1], stride=stride):
            n += 1
    else:  # the film decoder: working frames, every frame's thumbnail, full frames every 2nd processed frame
        info = probe(sys.argv[1])
        plan = StreamPlan(info, PictureArea(0, 40, 640, 280), (320, 140), stride=stride, full_every=2 * stride,
                          thumb_size=(48, 27))
        with FilmDecoder(sys.argv[1], plan, on_thumbnail=lambda i, im: None) as dec:
            while (f := dec.next_frame()) is not None:
                n += 1
                if f.index % (2 * stride) == 0:
                    dec.full_frame(f.index)
            dec.finish()
    print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
    """
)


def _clip(path, seconds: int) -> None:
    # ffmpeg's own test pattern: a real h264 stream with no rendering cost in Python
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
                    "-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", str(path)],
                   check=True, timeout=300)


def _peak(path, stride: int = 1, mode: str = "reader") -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(path), str(stride), mode], capture_output=True, text=True,
                         check=True, timeout=600).stdout.split()
    return int(out[0]), int(out[1])


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("memory")
    short, long = folder / "short.mp4", folder / "long.mp4"
    _clip(short, 4)
    _clip(long, 40)
    return short, long


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["reader", "film"])
def test_peak_memory_is_flat_in_video_length(clips, mode):
    short, long = clips
    n_short, rss_short = _peak(short, mode=mode)
    n_long, rss_long = _peak(long, mode=mode)
    assert (n_short, n_long) == (100, 1000)
    # 900 more 640x360 frames would be ~620 MiB if they were kept; allow 16 MiB of noise
    assert rss_long - rss_short < 16 * 1024, (rss_short, rss_long)
    # frames the tracker does not need never reach Python: stride 5 yields a fifth of the frames
    assert _peak(long, stride=5, mode=mode)[0] == 200
