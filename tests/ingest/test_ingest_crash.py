"""Crash safety: a real `portrait ingest` process is killed with SIGKILL mid-run, then re-run; the store
and the crop files must be consistent and complete (no duplicate rows, no orphans, no missing files)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml
from sqlalchemy import select

from portrait_builder.ingest import doctor
from portrait_builder.store import Crop, Project, Track, Video
from portrait_builder.synth import SynthConfig, render_video


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "portrait_builder", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path):
    clip = tmp_path / "clip.mp4"
    render_video(clip, SynthConfig(num_frames=160, shot_starts=(60, 110), seed=4))
    project = Project.init(tmp_path / "proj")
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text(yaml.safe_dump({"detector": "hog", "crop_every": 2, "min_height": 40, "commit_every": 5}))
    args = ["ingest", str(project.root), str(clip), "--config", str(cfg), "--no-progress"]
    proc = _cli(*args)
    db = project.root / "store.sqlite"
    killed_at = None
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            with sqlite3.connect(db, timeout=1) as conn:
                row = conn.execute("select last_committed_frame from videos").fetchone()
        except sqlite3.Error:
            continue
        if row and row[0] >= 40:
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = row[0]
            break
    proc.wait()
    assert killed_at is not None, "the ingest finished before it could be killed; make the clip longer"
    with project.session() as s:
        v = s.scalar(select(Video))
        assert v.status == "running" and 40 <= v.last_committed_frame < 159
        before = {c.path for c in s.scalars(select(Crop))}
        committed = v.last_committed_frame
    assert before

    out = _cli(*args)
    stdout, stderr = out.communicate(timeout=300)
    assert out.returncode == 0, stderr.decode()
    with project.session() as s:
        v = s.scalar(select(Video))
        crops = s.scalars(select(Crop)).all()
        tracks = s.scalars(select(Track)).all()
    assert v.status == "done" and v.last_committed_frame == 159
    assert v.report["resumed_from_frame"] == committed + 1
    assert v.report["frames_processed"] == 159 - committed
    paths = [c.path for c in crops]
    assert len(paths) == len(set(paths)) == len({(c.frame_index, c.track_id) for c in crops})
    assert before <= set(paths)  # committed crops survive
    assert any(c.frame_index > committed for c in crops)  # and the rest was ingested
    assert len({t.tracker_id for t in tracks}) == len(tracks)
    resumed_tracks = [t for t in tracks if t.first_frame > committed]
    assert all(t.tracker_id > max(t2.tracker_id for t2 in tracks if t2.first_frame <= committed) for t in resumed_tracks)
    health = doctor(project)
    assert health["orphans"] == health["missing"] == health["temp_files"] == []
    assert health["files"] == len(crops)
    # and `portrait doctor` agrees (exit 0 when clean)
    res = subprocess.run([sys.executable, "-m", "portrait_builder", "doctor", str(project.root)], capture_output=True, text=True)
    assert res.returncode == 0 and "orphan files 0" in res.stdout
