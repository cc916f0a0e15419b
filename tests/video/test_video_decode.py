"""Streaming decode: frame counts with passthrough timing, stride/start selection inside ffmpeg, metadata
without ffprobe, clear errors for bad files, good frames then an error for a truncated stream."""

from __future__ import annotations

import numpy as np
import pytest

from portrait_builder.errors import UserError
from portrait_builder.synth import SynthConfig, render_video
from portrait_builder.video import VideoReader, probe
from portrait_builder.video.decode import _probe_ffmpeg

PETS = "video/vtest_pets09_s2l1_480x360.avi"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "c.avi"  # mjpeg: every frame decodes independently
    render_video(path, SynthConfig(width=160, height=128, num_frames=30, num_people=1, min_person_height=60,
                                   max_person_height=80, shot_starts=(15,), seed=3))
    return path


def test_pets09_passthrough_gives_795_frames(shared_data):
    path = shared_data / PETS
    info = probe(path)
    assert (info.width, info.height, info.fps, info.frame_count) == (480, 360, 10.0, 795)
    reader = VideoReader(path)
    indices, stamps = [], []
    for f in reader:
        assert f.image.shape == (360, 480, 3) and f.image.dtype == np.uint8
        indices.append(f.index)
        stamps.append(f.timestamp)
    assert indices == list(range(795))  # ffmpeg's default rate conversion would give 797
    assert reader.error is None
    assert np.all(np.diff(stamps) > 0) and abs(np.median(np.diff(stamps)) - 0.1) < 1e-6


def test_stride_and_start_select_the_same_pixels(clip):
    full = {f.index: f.image.copy() for f in VideoReader(clip)}
    assert sorted(full) == list(range(30))
    picked = list(VideoReader(clip, stride=4, start=5))
    assert [f.index for f in picked] == [8, 12, 16, 20, 24, 28]
    for f in picked:
        np.testing.assert_array_equal(f.image, full[f.index])
        assert f.timestamp == pytest.approx(f.index / 10.0, abs=1e-3)


def test_metadata_without_ffprobe_matches_ffprobe(clip):
    a, b = probe(clip), _probe_ffmpeg(clip)
    assert (a.width, a.height, a.fps) == (b.width, b.height, b.fps) == (160, 128, 10.0)
    assert b.duration == pytest.approx(3.0, abs=0.2)


def test_missing_and_not_a_video(tmp_path):
    with pytest.raises(UserError, match="not found"):
        probe(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(UserError, match="not a video"):
        VideoReader(junk)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_truncated_stream_yields_good_frames_then_error(tmp_path, suffix):
    path = tmp_path / f"v{suffix}"
    render_video(path, SynthConfig(width=160, height=128, num_frames=40, num_people=1, min_person_height=60,
                                   max_person_height=80, shot_starts=(), seed=1))
    full = {f.index: f.image.copy() for f in VideoReader(path)}
    cut = tmp_path / f"cut{suffix}"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    reader = VideoReader(cut)
    frames = list(reader)
    assert 5 <= len(frames) < 40
    assert reader.error is not None and "\n" not in reader.error
    # the frames before the damage are the real ones (h264 may smear the very last one)
    for f in frames[:-2]:
        assert np.abs(f.image.astype(int) - full[f.index]).mean() < 1.0
