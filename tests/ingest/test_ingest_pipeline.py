"""End-to-end ingest of a synthetic clip into a real store (SQLite, and PostgreSQL when available)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from sqlalchemy import func, select

from portrait_builder.ingest import (
    CROP_H,
    CROP_W,
    IngestConfig,
    VideoReport,
    doctor,
    expand_to_aspect,
    extract_crop,
    ingest_video,
)
from portrait_builder.ingest.report import RayRun
from portrait_builder.store import Crop, Track, Video
from portrait_builder.synth import SynthConfig, render_video

# The keys of a report file and of videos.report, in the order videos.report keeps them.
REPORT_KEYS = [
    "video_id", "path", "fingerprint", "status", "error", "resumed_from_frame", "frames_decoded", "frames_processed",
    "detections", "tracked_boxes", "tracks", "crops", "shots", "shot_cuts", "shot_detector", "picture_area",
    "working_size", "track_stride", "seconds", "fps_end_to_end", "realtime_ratio", "detector", "video", "config",
    "cumulative",
]


@pytest.fixture(scope="module")
def synth_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "clip.mp4"
    gt = render_video(path, SynthConfig(num_frames=60, shot_starts=(30,), seed=0))
    return path, gt


def test_expand_and_pad_crop():
    boxes = expand_to_aspect(np.array([[10, 10, 30, 30], [0, 0, 10, 100]], np.float32))
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    np.testing.assert_allclose(w / h, 0.5)
    np.testing.assert_allclose(boxes[0], [10, 0, 30, 40])  # grown around the centre, never shrunk
    frame = np.full((100, 100, 3), 200, np.uint8)
    crop = extract_crop(frame, (-20, 10, 20, 90))  # left half outside the frame
    assert crop.shape == (CROP_H, CROP_W, 3)
    assert crop[:, : CROP_W // 2 - 2].max() == 0 and crop[:, CROP_W // 2 + 2 :].min() == 200  # constant padding


def test_ingest_synthetic_clip(project, synth_clip, tmp_path):
    path, gt = synth_clip
    mot = tmp_path / "out.txt"
    report = ingest_video(project, path, IngestConfig(crop_every=3, min_height=40, mot_out=str(mot)), progress=False)
    assert report.status == "done" and report.error is None
    assert report.frames_processed == report.frames_decoded == 60
    assert report.crops > 10 and report.tracks >= 3 and report.shots == 2
    assert set(report.seconds) >= {"decode", "detect", "track", "write", "commit", "wall"}
    with project.session() as s:
        v = s.scalar(select(Video))
        assert v.status == "done" and v.last_committed_frame == 59 and v.report == report.to_dict()
        crops = s.scalars(select(Crop)).all()
        tracks = {t.id: t for t in s.scalars(select(Track))}
    assert len(crops) == report.crops
    assert len({(c.frame_index, c.track_id) for c in crops}) == len(crops)
    for c in crops:
        img = cv2.imread(str(project.crop_root / c.path))
        assert img.shape == (256, 128, 3)
        assert len(c.embedding) == 2 * 120 and c.blur > 0 and c.y2 - c.y1 >= 40
        t = tracks[c.track_id]
        assert t.first_frame <= c.frame_index <= t.last_frame
        # no track spans the cut at frame 30
        assert (t.first_frame < 30) == (t.last_frame < 30)
        assert t.shot_index == (0 if t.first_frame < 30 else 1)
    emb = np.frombuffer(crops[0].embedding, "<f2").astype(np.float32)
    assert abs(np.linalg.norm(emb) - 1) < 1e-2
    # crops of one track are at least crop_every processed frames apart
    by_track = {}
    for c in crops:
        by_track.setdefault(c.track_id, []).append(c.frame_index)
    for frames in by_track.values():
        assert np.all(np.diff(sorted(frames)) >= 3)
    rows = np.loadtxt(mot, delimiter=",", ndmin=2)
    assert rows.shape[1] == 10 and rows[:, 0].min() >= 1 and rows[:, 0].max() <= 60 and (rows[:, 7:] == -1).all()
    assert len(rows) == report.tracked_boxes
    saved = json.loads((project.root / "reports" / f"{v.id:05d}_clip.json").read_text())
    assert saved == report.to_dict() and list(report.to_dict()) == REPORT_KEYS
    assert saved["detector"] == {"name": IngestConfig().detector, "fingerprint": report.detector.fingerprint}
    assert saved["cumulative"] == {"frames_processed": 60, "detections": report.detections, "tracks": report.tracks,
                                   "crops": report.crops}
    assert saved["picture_area"] == [0, 0, 480, 320] and saved["config"] == IngestConfig(
        crop_every=3, min_height=40, mot_out=str(mot)).to_dict()
    assert doctor(project)["orphans"] == [] and doctor(project)["missing"] == []
    # the same content again is a no-op
    again = ingest_video(project, path, IngestConfig(), progress=False)
    assert again.skipped and again.video_id == v.id and again.crops == 0
    with project.session() as s:
        assert s.scalar(select(func.count()).select_from(Crop)) == len(crops)


def test_report_json_names_what_applies():
    """Keys beyond the run's report appear only where they apply: a skipped video, a Ray run."""
    done = VideoReport(video_id=1, path="a.mp4", fingerprint="f", status="done")
    assert list(done.to_dict()) == REPORT_KEYS
    skipped = VideoReport(video_id=1, path="a.mp4", fingerprint="f", status="done", skipped=True, duplicate_of="b.mp4")
    assert list(skipped.to_dict()) == [*REPORT_KEYS, "skipped", "duplicate_of"]
    ray = VideoReport(video_id=1, path="a.mp4", fingerprint="f", status="done", shot_cuts=(3, 9), ray=RayRun("n1", 5))
    d = ray.to_dict()
    assert list(d) == [*REPORT_KEYS, "executor", "node", "rows_inserted"]
    assert (d["executor"], d["node"], d["rows_inserted"], d["shot_cuts"]) == ("ray", "n1", 5, [3, 9])


def test_doctor_repairs_orphans_and_missing(tmp_path, synth_clip):
    from portrait_builder.store import Project

    path, _ = synth_clip
    project = Project.init(tmp_path / "p")
    ingest_video(project, path, IngestConfig(crop_every=10, min_height=40), progress=False)
    with project.session() as s:
        c = s.scalars(select(Crop)).first()
    (project.crop_root / c.path).unlink()
    (project.crop_root / "v00001" / "stray.jpg").write_bytes(b"x")
    (project.crop_root / "v00001" / "half.jpg.tmp").write_bytes(b"x")
    r = doctor(project)
    assert r["missing"] == [c.path] and r["orphans"] == ["v00001/stray.jpg"] and r["temp_files"] == ["v00001/half.jpg.tmp"]
    fixed = doctor(project, repair=True)
    assert fixed["removed"] == 2 and fixed["restored"] == 1 and fixed["unrepairable"] == []
    assert cv2.imread(str(project.crop_root / c.path)).shape == (256, 128, 3)
    clean = doctor(project)
    assert clean["missing"] == clean["orphans"] == clean["temp_files"] == []
