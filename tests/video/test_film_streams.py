"""The film decoder (one ffmpeg, three pipes), letterbox detection and the sample aspect ratio.

Reference: ``VideoReader`` (one full-frame stream, tested against the PETS09 frame count and
timestamps) on the same file in the same run, and cv2.resize for the working-size frames.
"""

from __future__ import annotations

import subprocess

import cv2
import numpy as np
import pytest

from portrait_builder.video import FilmDecoder, PictureArea, StreamPlan, VideoReader, ffmpeg_exe, probe, working_size
from portrait_builder.video.decode import parse_ffmpeg_header
from portrait_builder.video.letterbox import picture_area_of


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """ffmpeg's test pattern, 25 fps, 3 s, 320x180 stored pixels shown 16:9 * 1.5 wide (SAR 3:2)."""
    path = tmp_path_factory.mktemp("streams") / "pattern.mkv"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "3",
                    "-vf", "setsar=3/2", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", str(path)],
                   check=True, timeout=120)
    return path


def test_three_streams_match_the_plain_reader(clip):
    info = probe(clip)
    assert (info.width, info.height, info.sar) == (320, 180, 1.5)
    with VideoReader(clip) as reader:
        full = {f.index: (f.timestamp, f.image.copy()) for f in reader}
    assert len(full) == 75
    area = PictureArea.full(info)
    size = working_size(area, info.sar, 240)
    assert size == (240, 90)  # 480x180 displayed, longer side 240, square pixels
    plan = StreamPlan(info, area, size, stride=3, start=7, full_every=6, thumb_size=(32, 18))
    thumbs = []
    seen, fulls = [], {}
    with FilmDecoder(clip, plan, queue_size=2, on_thumbnail=lambda i, im: thumbs.append((i, im.copy())),
                     on_thumbnails_end=lambda: thumbs.append(None)) as dec:
        while (f := dec.next_frame()) is not None:
            seen.append((f.index, f.timestamp))
            ref = cv2.resize(full[f.index][1], size, interpolation=cv2.INTER_AREA)
            assert f.image.shape == (90, 240, 3) and np.abs(f.image.astype(int) - ref).mean() < 4
            if f.index % 6 == 0:
                fulls[f.index] = dec.full_frame(f.index)
        assert dec.finish() is None
    # every 3rd frame from 9 (the first multiple of 3 at or after 7), each with the reader's own timestamp
    assert [i for i, _ in seen] == list(range(9, 75, 3))
    assert all(abs(t - full[i][0]) < 1e-6 for i, t in seen)
    assert sorted(fulls) == list(range(12, 75, 6))
    for i, image in fulls.items():  # full resolution, the very pixels of the reader
        assert np.array_equal(image, full[i][1])
    assert thumbs[-1] is None and [i for i, _ in thumbs[:-1]] == list(range(7, 75))
    assert thumbs[0][1].shape == (18, 32, 3)


def test_boxes_map_back_to_source_pixels(clip):
    info = probe(clip)
    area = PictureArea(10, 20, 300, 140)
    plan = StreamPlan(info, area, working_size(area, info.sar, 0), stride=1)
    assert plan.work_size == (450, 140)
    box = plan.to_source(np.array([[45, 14, 90, 28], [np.nan] * 4], np.float32))
    np.testing.assert_allclose(box[0], [10 + 30, 20 + 14, 10 + 60, 20 + 28])
    assert np.isnan(box[1]).all()


def test_picture_area_of_samples():
    frames = np.zeros((3, 100, 200), np.uint8)
    frames[:, 12:88, :] = 120  # symmetric letterbox: 12 rows top and bottom
    assert picture_area_of(frames) == (0, 12, 200, 76)
    one_sided = frames.copy()
    one_sided[:, 80:88, :] = 0  # a dark band inside the picture at the bottom only: bars stay symmetric
    assert picture_area_of(one_sided) == (0, 12, 200, 76)
    dark_scene = frames.copy()
    dark_scene[0, 12:40] = 10  # a dark sample does not shrink the picture another sample shows
    assert picture_area_of(dark_scene) == (0, 12, 200, 76)
    thin = np.full((2, 100, 200), 90, np.uint8)
    thin[:, :1] = 0  # one dark row is not a bar
    assert picture_area_of(thin) == (0, 0, 200, 100)
    assert picture_area_of(np.zeros((2, 50, 50), np.uint8)) is None  # nothing bright: no decision
    pillar = np.zeros((2, 100, 200), np.uint8)
    pillar[:, :, 25:175] = 200
    assert picture_area_of(pillar) == (24, 0, 152, 100)  # rounded to even pixels, never into the picture


def test_sar_from_the_ffmpeg_header_without_ffprobe(clip):
    header = ("Input #0, matroska,webm, from 'x.mkv':\n  Duration: 00:00:03.00, start: 0.000000, bitrate: 50 kb/s\n"
              "  Stream #0:0: Video: h264 (High), yuv420p(progressive), 720x480 [SAR 32:27 DAR 16:9], 29.97 fps, "
              "29.97 tbr, 1k tbn\n")
    info = parse_ffmpeg_header(header, "x.mkv")
    assert (info.width, info.height) == (720, 480) and abs(info.sar - 32 / 27) < 1e-9
    assert parse_ffmpeg_header(header.replace(" [SAR 32:27 DAR 16:9]", ""), "x.mkv").sar == 1.0
    assert probe(clip, use_ffprobe=False).sar == 1.5 == probe(clip).sar
