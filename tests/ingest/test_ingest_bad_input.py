"""Bad input through the real command: one line on stderr, non-zero exit, earlier crops kept."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import select

from portrait_builder.store import Crop, Project, Video
from portrait_builder.synth import SynthConfig, render_video


def _run(*args):
    return subprocess.run([sys.executable, "-m", "portrait_builder", *args], capture_output=True, text=True, timeout=300)


def test_missing_file_and_not_a_video(tmp_path):
    project = Project.init(tmp_path / "p")
    res = _run("ingest", str(project.root), str(tmp_path / "missing.mp4"), "--no-progress")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not found" in res.stderr
    junk = tmp_path / "notes.mp4"
    junk.write_text("hello, I am not a video\n" * 50)
    res = _run("ingest", str(project.root), str(junk), "--no-progress")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not a video" in res.stderr
    with project.session() as s:
        assert s.scalars(select(Video)).all() == []  # nothing stored for unusable input
    res = _run("ingest", str(project.root), str(junk), "--detector", "nope")
    assert res.returncode == 2 and "valid detectors" in res.stderr


def test_detector_options_from_the_command_line(tmp_path):
    clip = tmp_path / "clip.mp4"
    render_video(clip, SynthConfig(num_frames=12, shot_starts=(), seed=0))
    project = Project.init(tmp_path / "p")
    res = _run("ingest", str(project.root), str(clip), "--detector-option", "no_such_option=3", "--no-progress")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "no_such_option" in res.stderr
    res = _run("ingest", str(project.root), str(clip), "--detector-option", "padding", "--no-progress")
    assert res.returncode == 2 and "KEY=VALUE" in res.stderr
    res = _run("ingest", str(project.root), str(clip), "--detector", "hog", "--detector-option", "padding=8", "--no-progress")
    assert res.returncode == 0, res.stderr
    with project.session() as s:
        params = s.scalars(select(Video)).one().params
    assert params["ingest"]["detector_options"] == {"padding": 8} and params["detector_params"]["padding"] == 8


def test_truncated_video_keeps_earlier_crops_and_is_partial(tmp_path):
    clip = tmp_path / "clip.mp4"
    render_video(clip, SynthConfig(num_frames=80, shot_starts=(), seed=0))
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # cut a real file in half
    project = Project.init(tmp_path / "p")
    res = _run("ingest", str(project.root), str(cut), "--no-progress", "--crop-every", "2", "--min-height", "40")
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "partial" in res.stderr
    with project.session() as s:
        v = s.scalar(select(Video))
        crops = s.scalars(select(Crop)).all()
    assert v.status == "partial" and v.error
    assert crops and all((project.crop_root / c.path).is_file() for c in crops)
    assert max(c.frame_index for c in crops) <= v.last_committed_frame < 79
