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


# -- the reader/consumer queues -----------------------------------------------------------------------
def test_a_waiting_consumer_lets_the_other_stream_run_ahead():
    """The hang this prevents: ffmpeg wrote full-resolution frames ahead of the working frame the consumer
    waited for; with a hard bound of 2 the full reader stopped draining its pipe, ffmpeg stopped, and the
    working frame never came. Here the full reader must queue 6 frames before the working one exists."""
    import queue
    import threading

    from portrait_builder.video.streams import _Channels

    stop = threading.Event()
    ch = _Channels({"work": 1, "full": 2}, stop)
    put = []

    def reader():
        put.extend(ch.put("full", i) for i in range(6))
        put.append(ch.put("work", "w0"))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    got = []
    deadline = 50  # 0.2 s steps: 10 s
    while not got and deadline:
        try:
            got.append(ch.get("work"))
        except queue.Empty:
            deadline -= 1
    t.join(timeout=10)
    stop.set()
    assert got == ["w0"] and put == [True] * 7, "the full stream's bound held while the consumer waited: deadlock"
    assert [ch.get("full") for _ in range(6)] == list(range(6))  # in order, nothing lost


def test_the_bound_holds_while_the_consumer_works_and_stop_ends_a_wait():
    import queue
    import threading
    import time

    from portrait_builder.video.streams import _Channels

    stop = threading.Event()
    ch = _Channels({"work": 4, "full": 2}, stop)
    results = []
    t = threading.Thread(target=lambda: results.extend(ch.put("full", i) for i in range(5)), daemon=True)
    t.start()
    time.sleep(0.6)  # nobody calls get: the reader must stop at the bound
    assert len(ch._items["full"]) == 2 and t.is_alive()
    stop.set()
    t.join(timeout=5)
    assert not t.is_alive() and results == [True, True, False, False, False]  # not queued once stopping
    assert list(ch._items["full"]) == [0, 1]
    # a frame nobody will take (drop() true) is let go at the bound and counts as put
    ch2 = _Channels({"full": 1}, threading.Event())
    assert ch2.put("full", "a") and ch2.put("full", "b", drop=lambda: True)
    assert ch2.get("full") == "a"
    with pytest.raises(queue.Empty):
        ch2.get("full", timeout=0.05)


def test_next_frame_ends_after_close(clip):
    """A consumer still reading after ``close`` (the ingest's detect stage when another stage failed) gets
    None, not an endless wait: no end marker is queued once the decoder stops."""
    import threading

    info = probe(clip)
    area = PictureArea.full(info)
    plan = StreamPlan(info, area, working_size(area, info.sar, 240), full_every=2, thumb_size=(32, 18))
    dec = FilmDecoder(clip, plan, queue_size=1, on_thumbnail=lambda i, im: None)
    dec.start()
    assert dec.next_frame() is not None
    dec.close()
    frames = []
    t = threading.Thread(target=lambda: frames.extend(iter(dec.next_frame, None)), daemon=True)
    t.start()
    t.join(timeout=10)
    assert not t.is_alive(), "next_frame kept waiting after close"
    assert len(frames) <= 2  # at most what was queued before the close
