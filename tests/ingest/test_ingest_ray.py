"""Ray-distributed ingest against a real local Ray instance (one start per test module): one task per
video, rows committed by the driver, failed attempts retried without duplicates or orphan files.

Reference: the local executor on the same clips in the same run; the Ray executor must store exactly the
same crops (paths, frames, boxes, tracker ids) as it, whatever attempt failed on the way.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portrait_builder.errors import UserError
from portrait_builder.ingest import (
    CommitBatch,
    IngestConfig,
    VideoRequest,
    commit_batch,
    create_executor,
    doctor,
    ingest_video,
    produce_video,
)
from portrait_builder.ingest.executors import FAULT_ENV, gpus_per_task
from portrait_builder.ingest.pipeline import prepare_video
from portrait_builder.store import Crop, Project, Track, Video
from portrait_builder.synth import SynthConfig, render_video

ray = pytest.importorskip("ray")

# HOG: deterministic and fast on the synthetic figures; the executor, not the detector, is under test.
CONFIG = IngestConfig(detector="hog", crop_every=3, min_height=40, commit_every=8)


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance for the whole module (starting one takes ~5 s here)."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rayclips")
    paths = []
    for seed in (1, 2):
        p = folder / f"clip{seed}.mp4"
        render_video(p, SynthConfig(num_frames=32, shot_starts=(16,), seed=seed))
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def reference(clips, tmp_path_factory):
    """The local executor's crops per clip: {clip name: {(path, frame, tracker_id, box rounded)}}."""
    project = Project.init(tmp_path_factory.mktemp("rayref") / "p")
    out = {}
    for c in clips:
        report = ingest_video(project, c, CONFIG, progress=False)
        out[c.name] = (_crop_keys(project, report.video_id), report)
    project.close()
    return out


def _crop_keys(project: Project, video_id: int) -> set:
    with project.session() as s:
        rows = s.execute(
            select(Crop.path, Crop.frame_index, Track.tracker_id, Track.shot_index, Crop.x1, Crop.y1, Crop.x2, Crop.y2)
            .join(Track, Crop.track_id == Track.id).where(Crop.video_id == video_id)
        ).all()
    # the video id is part of the path; compare the file name (frame + tracker id), which is deterministic
    return {(p.split("/", 1)[1], f, t, sh, round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2)) for p, f, t, sh, x1, y1, x2, y2 in rows}


def _assert_clean(project: Project) -> None:
    with project.session() as s:
        n = s.scalar(select(func.count()).select_from(Crop))
        keys = s.execute(select(Crop.video_id, Crop.frame_index, Crop.track_id)).all()
        tracks = s.execute(select(Track.video_id, Track.tracker_id)).all()
    assert len(set(keys)) == len(keys) == n  # no duplicate (video, frame, track)
    assert len(set(tracks)) == len(tracks)
    health = doctor(project)
    assert health["orphans"] == health["missing"] == health["temp_files"] == []
    assert health["files"] == n


def test_registry_and_gpu_choice():
    with pytest.raises(UserError, match="valid: local, ray"):
        create_executor("spark")
    with pytest.raises(UserError, match="max_retries"):
        create_executor("ray", max_retries=-1)
    assert gpus_per_task({"CPU": 16.0, "GPU": 1.0}) == 1 and gpus_per_task({"CPU": 2.0}) == 0
    assert gpus_per_task({"CPU": 2.0, "GPU": 0.0}) == 0


def test_commit_batch_is_idempotent(project, clips, reference):
    """The driver's commit: the same batches twice store each crop once (insert-if-absent on the key)."""
    prepared = prepare_video(project, clips[0], CONFIG, lambda: _hog())
    batches: list[CommitBatch] = []
    produced = produce_video(prepared.job, batches.append, info=prepared.info)
    assert len(batches) == 4  # 32 frames / commit_every 8
    inserted = [commit_batch(project, prepared.job.video_id, b) for b in batches]
    again = [commit_batch(project, prepared.job.video_id, b) for b in batches]
    assert sum(inserted) == produced.crops > 0 and again == [0, 0, 0, 0]
    assert _crop_keys(project, prepared.job.video_id) == reference[clips[0].name][0]
    with project.session() as s:
        assert s.get(Video, prepared.job.video_id).last_committed_frame == 31


def _hog():
    from portrait_builder.detect import create_detector

    return create_detector("hog")


@pytest.mark.slow
def test_ray_retry_after_exception_matches_local(project, clips, reference, ray_local, tmp_path, monkeypatch):
    """Each video's first attempt raises after writing one batch of crop files; the retry overwrites the
    same names; the store equals the local executor's, without duplicates or orphans (SQLite and PG)."""
    markers = tmp_path / "markers"
    monkeypatch.setenv(FAULT_ENV, f"raise:1:{markers}")
    ex = create_executor("ray", max_retries=2)
    reports = {r.path: rep for r, rep in ex.run(project, [VideoRequest(str(c), CONFIG) for c in clips], progress=True)}
    assert sorted(p.name for p in markers.iterdir()) == ["v00001", "v00002"]  # both first attempts failed
    for c in clips:
        rep = reports[str(c)]
        ref_keys, ref_report = reference[c.name]
        assert rep.status == "done" and rep.ray is not None and rep.error is None
        assert rep.crops == rep.ray.rows_inserted == ref_report.crops and rep.tracks == ref_report.tracks
        assert _crop_keys(project, rep.video_id) == ref_keys
    with project.session() as s:
        assert {v.status for v in s.scalars(select(Video))} == {"done"}
    _assert_clean(project)
    # a second run is a no-op
    again = [rep for _, rep in create_executor("ray").run(project, [VideoRequest(str(c), CONFIG) for c in clips], progress=False)]
    assert all(r.skipped for r in again)


@pytest.mark.slow
def test_ray_worker_killed_then_failed_task_leaves_no_orphans(clips, reference, ray_local, tmp_path, monkeypatch):
    """(1) the worker process dies mid-task (os._exit after one batch) and Ray retries it: complete store.
    (2) with no retries left a failed task marks the video failed and leaves no orphan file; a later run
    without the fault ingests it fully, equal to the local executor."""
    project = Project.init(tmp_path / "p")
    monkeypatch.setenv(FAULT_ENV, f"exit:1:{tmp_path / 'm1'}")
    [(_, rep)] = list(create_executor("ray", max_retries=1).run(project, [VideoRequest(str(clips[0]), CONFIG)], progress=False))
    assert (tmp_path / "m1" / "v00001").is_file()
    assert rep.status == "done" and _crop_keys(project, rep.video_id) == reference[clips[0].name][0]
    _assert_clean(project)

    monkeypatch.setenv(FAULT_ENV, f"raise:2:{tmp_path / 'm2'}")
    [(_, rep)] = list(create_executor("ray", max_retries=0).run(project, [VideoRequest(str(clips[1]), CONFIG)], progress=False))
    assert (tmp_path / "m2" / "v00002").is_file()  # the attempt wrote two batches of files before failing
    assert rep.status == "failed" and "injected fault" in rep.error
    with project.session() as s:
        v = s.get(Video, rep.video_id)
        assert v.status == "failed" and v.last_committed_frame == -1
        assert s.scalar(select(func.count()).select_from(Crop).where(Crop.video_id == v.id)) == 0
    assert not list((project.crop_root / "v00002").glob("*"))  # its files are gone: no orphans
    _assert_clean(project)

    monkeypatch.delenv(FAULT_ENV)
    [(_, rep)] = list(create_executor("ray").run(project, [VideoRequest(str(clips[1]), CONFIG)], progress=False))
    assert rep.status == "done" and _crop_keys(project, rep.video_id) == reference[clips[1].name][0]
    _assert_clean(project)


def test_cli_executor_flags(tmp_path, clips, capsys):
    from portrait_builder.cli import main

    Project.init(tmp_path / "p").close()
    assert main(["ingest", str(tmp_path / "p"), str(clips[0]), "--executor", "spark"]) == 2
    assert "valid: local, ray" in capsys.readouterr().err
    assert main(["ingest", str(tmp_path / "p"), str(clips[0]), "--ray-address", "auto"]) == 2
    assert "need --executor ray" in capsys.readouterr().err


@pytest.mark.parametrize(("address", "needle"), [("127.0.0.1:9", "cannot connect to the Ray cluster at 127.0.0.1:9"),
                                                 ("ray://127.0.0.1:9", "cannot connect to the Ray cluster"),
                                                 ("headnode", "bad Ray address 'headnode'")])
def test_unreachable_ray_address_fails_at_once(tmp_path, clips, capsys, monkeypatch, address, needle):
    """Ray itself retries an unreachable head for minutes; we fail with one line before registering anything."""
    from portrait_builder.cli import main

    # as in a fresh `portrait` process, whatever Ray instance an earlier test of this module left running
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("ray.init reached with an unreachable address"))
    Project.init(tmp_path / "p").close()
    code = main(["ingest", str(tmp_path / "p"), str(clips[0]), "--executor", "ray", "--ray-address", address,
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    project = Project.open(tmp_path / "p")
    with project.session() as s:
        assert s.scalar(select(func.count()).select_from(Video)) == 0
    project.close()


@pytest.mark.slow
def test_cli_ray_resumes_partly_committed_video(tmp_path, clips, reference, ray_local, capsys):
    """`portrait ingest --executor ray` on a video whose first half a killed local run committed: the Ray
    task starts after the last committed frame, and no row is duplicated."""
    from portrait_builder.cli import main

    project = Project.init(tmp_path / "p")
    prepared = prepare_video(project, clips[0], CONFIG, _hog)
    batches: list[CommitBatch] = []
    produce_video(prepared.job, batches.append, info=prepared.info)
    for b in batches[:2]:  # as if the local run was killed after two commits (frames 0..15)
        commit_batch(project, prepared.job.video_id, b)
    (project.crop_root / "v00001" / "f00000030_t000099.jpg").write_bytes(b"uncommitted")  # a killed batch's file
    code = main(["ingest", str(project.root), str(clips[0]), str(clips[1]), "--executor", "ray", "--no-progress",
                 "--detector", "hog", "--crop-every", "3", "--min-height", "40"])
    out = capsys.readouterr().out
    assert code == 0 and out.count(": done: ") == 2
    with project.session() as s:
        v = s.get(Video, 1)
        assert v.status == "done" and v.report["resumed_from_frame"] == 16 and v.report["frames_processed"] == 16
    _assert_clean(project)  # no duplicates, the stray file was removed before dispatch
    # frames before the resume point are the local run's crops exactly
    ref = {k for k in reference[clips[0].name][0] if k[1] < 16}
    assert {k for k in _crop_keys(project, 1) if k[1] < 16} == ref
