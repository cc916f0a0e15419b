"""``ingest_video``: decode -> detect -> track -> crop, into the project store, resumable.

Stages run concurrently with bounded queues (memory stays flat):

    decode thread ──q──► detect thread ──q──► main thread: shot cuts + tracker ──q──► writer thread
    (ffmpeg pipe)        (batches; OpenCV/torch/ort     (cheap, sequential)           (crop, JPEG, files,
                          release the GIL)                                              store commits)

Crash safety: the writer handles ``commit_every`` processed frames at a time: it writes each crop to a
``.tmp`` name and renames it, then commits the batch's track and crop rows together with
``videos.last_committed_frame`` in ONE transaction. A kill between rename and commit leaves files without
rows; the next run deletes every file of the video that no row names (and every ``.tmp``) before it
resumes after ``last_committed_frame``. So: no duplicate rows (resume starts after the committed frame),
no orphan files, no missing crops.

Produce and sink are separate: ``produce_video(job, sink)`` decodes, detects, tracks and writes crop files
(deterministic names) and hands each batch of plain rows (:class:`CommitBatch`) to ``sink``; it never
opens the store. ``ingest_video`` passes ``commit_batch`` as the sink; the Ray executor
(``executors.py``) collects the batches on a worker and commits them on the driver with the same function.

Tracker state is not persisted: a resumed run starts new tracks at the resume frame, with ids after
the largest id stored (``JDETracker(first_id=...)``), in a new shot index. A person visible across the
resume point therefore gets two tracks; ids never collide.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from portrait_builder.detect import Detections, create_detector
from portrait_builder.errors import UserError
from portrait_builder.ingest.config import IngestConfig
from portrait_builder.ingest.crops import blur_score, encode_jpeg, extract_crop
from portrait_builder.store import Crop, Project, Track, Video
from portrait_builder.video import Frame, VideoInfo, VideoReader, probe

log = logging.getLogger(__name__)

_END = object()


def file_fingerprint(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of the file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def crop_relpath(video_id: int, frame_index: int, tracker_id: int) -> str:
    """Deterministic crop path (relative to the crop root): a re-run writes the same names."""
    return f"v{video_id:05d}/f{frame_index:08d}_t{tracker_id:06d}.jpg"


@dataclass
class _Stats:
    frames: int = 0
    detections: int = 0
    tracked_boxes: int = 0
    crops: int = 0
    shots: int = 0
    seconds: dict = field(default_factory=lambda: {"decode": 0.0, "detect": 0.0, "track": 0.0, "write": 0.0, "commit": 0.0})


@dataclass
class _TrackInfo:
    tracker_id: int
    shot_index: int
    first_frame: int
    last_frame: int
    last_crop_step: int | None = None  # processed-frame counter at the last crop
    stored: bool = False  # handed to the sink in a batch: its row exists (or will, on the driver)


class _Failure:
    def __init__(self):
        self.exc: BaseException | None = None
        self.stop = threading.Event()

    def set(self, exc: BaseException) -> None:
        if self.exc is None:
            self.exc = exc
        self.stop.set()


def _canonical_order(dets: Detections) -> Detections:
    """Detections sorted by box (x1, y1, x2, y2, score). OpenCV's HOG collects windows from parallel threads,
    so its output order varies run to run; new track ids follow detection order, and crop file names carry
    the track id. Sorting makes a re-run (a retried Ray task) produce the same tracks and file names."""
    if len(dets) < 2:
        return dets
    b = dets.xyxy
    order = np.lexsort((dets.scores, b[:, 3], b[:, 2], b[:, 1], b[:, 0]))
    return dets[order]


def _put(q: queue.Queue, item, failure: _Failure) -> bool:
    while not failure.stop.is_set():
        try:
            q.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, failure: _Failure):
    while True:
        try:
            return q.get(timeout=0.2)
        except queue.Empty:
            if failure.stop.is_set():
                return _END


def _register_video(project: Project, path: Path, fingerprint: str, info, config: IngestConfig, detector) -> tuple[int, str, int]:
    """Create or find the video row; returns (video_id, status, last_committed_frame)."""

    def fn(s):
        v = s.scalar(select(Video).where(Video.fingerprint == fingerprint))
        if v is None:
            v = Video(path=str(path.resolve()), fingerprint=fingerprint, title=path.stem, status="pending", last_committed_frame=-1)
            s.add(v)
        if v.status == "done":
            return v.id, v.status, v.last_committed_frame
        if v.last_committed_frame >= 0 and v.detector and (v.detector != detector.name or v.weights_fingerprint != detector.fingerprint):
            raise UserError(
                f"{path.name} was partly ingested with detector {v.detector} ({(v.weights_fingerprint or '')[:12]}); "
                f"resume with the same detector and weights"
            )
        v.path = str(path.resolve())
        v.fps, v.frame_count, v.width, v.height = info.fps, info.frame_count, info.width, info.height
        v.status = "running"
        v.detector, v.weights_fingerprint = detector.name, detector.fingerprint
        params = dict(v.params or {})
        params["ingest"] = config.to_dict()
        params["detector_params"] = getattr(detector, "params", {})
        v.params = params
        v.error = None
        s.flush()
        return v.id, v.status, v.last_committed_frame

    return project.run_write(fn)


def remove_uncommitted_files(project: Project, video_id: int) -> int:
    """Delete the files of ``video_id`` under the crop root that no crop row names (a killed batch)."""
    folder = project.crop_root / f"v{video_id:05d}"
    if not folder.is_dir():
        return 0
    with project.session() as s:
        known = set(s.scalars(select(Crop.path).where(Crop.video_id == video_id)))
    removed = 0
    for f in folder.iterdir():
        rel = f"{folder.name}/{f.name}"
        if f.is_file() and (f.suffix == ".tmp" or rel not in known):
            f.unlink()
            removed += 1
    return removed


@dataclass
class CommitBatch:
    """One batch of processed frames as plain rows (no ORM; picklable, so a Ray worker can return it).

    tracks: ``{"tracker_id", "first_frame", "last_frame", "shot_index"}`` for every track that got a crop
    in this batch or was stored before and is still alive. crops: ``{"tracker_id", "frame_index",
    "timestamp", "x1", "y1", "x2", "y2", "score", "blur", "path", "embedding"}`` (embedding: float16 bytes).
    last_frame: the last processed source frame of the batch; state: the resume state after it.
    """

    last_frame: int
    state: dict
    tracks: list[dict] = field(default_factory=list)
    crops: list[dict] = field(default_factory=list)


def commit_batch(project: Project, video_id: int, batch: CommitBatch) -> int:
    """Commit one batch in ONE transaction: tracks upserted by (video, tracker id), crops inserted only
    where (video, frame, track) is absent, ``videos.last_committed_frame`` and the resume state advanced.

    Idempotent: committing the same batch twice changes nothing the second time (a retried Ray task, a
    driver re-committing a result). Returns the number of crops inserted.
    """
    tracker_ids = [t["tracker_id"] for t in batch.tracks]

    def fn(s) -> int:
        stored = {
            tid: (dbid, first, last)
            for dbid, tid, first, last in s.execute(
                select(Track.id, Track.tracker_id, Track.first_frame, Track.last_frame).where(
                    Track.video_id == video_id, Track.tracker_id.in_(tracker_ids)
                )
            )
        } if tracker_ids else {}
        track_db: dict[int, int] = {}
        for t in batch.tracks:
            got = stored.get(t["tracker_id"])
            if got is None:
                tr = Track(video_id=video_id, tracker_id=t["tracker_id"], first_frame=t["first_frame"],
                           last_frame=t["last_frame"], shot_index=t["shot_index"])
                s.add(tr)
                s.flush()
                track_db[t["tracker_id"]] = tr.id
            else:
                track_db[t["tracker_id"]] = got[0]
                if t["last_frame"] > got[2] or t["first_frame"] < got[1]:
                    tr = s.get(Track, got[0])
                    tr.first_frame, tr.last_frame = min(got[1], t["first_frame"]), max(got[2], t["last_frame"])
        present: set[tuple[int, int]] = set()
        if batch.crops:
            frames = [c["frame_index"] for c in batch.crops]
            present = {
                (f, tr)
                for f, tr in s.execute(
                    select(Crop.frame_index, Crop.track_id).where(
                        Crop.video_id == video_id, Crop.frame_index >= min(frames), Crop.frame_index <= max(frames)
                    )
                )
            }
        new = [c for c in batch.crops if (c["frame_index"], track_db[c["tracker_id"]]) not in present]
        s.add_all(
            Crop(video_id=video_id, track_id=track_db[c["tracker_id"]], frame_index=c["frame_index"],
                 timestamp=c["timestamp"], x1=c["x1"], y1=c["y1"], x2=c["x2"], y2=c["y2"], score=c["score"],
                 blur=c["blur"], path=c["path"], embedding=c["embedding"])
            for c in new
        )
        v = s.get(Video, video_id)
        v.last_committed_frame = max(v.last_committed_frame, batch.last_frame)
        params = dict(v.params or {})
        params["resume"] = dict(batch.state)
        v.params = params
        return len(new)

    return project.run_write(fn)


class _Writer:
    """Crop extraction and JPEG files for ``commit_every`` processed frames at a time; each finished batch
    of rows goes to ``sink`` (the store commit locally, a list on a Ray worker)."""

    def __init__(self, crop_root: Path, video_id: int, config: IngestConfig, stats: _Stats, sink, resume_state: dict):
        self.crop_root, self.video_id, self.config, self.stats, self.sink = crop_root, video_id, config, stats, sink
        self.state = resume_state  # carried in videos.params["resume"]: next_track_id, shot_index
        self.folder = crop_root / f"v{video_id:05d}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pending: list[tuple[Frame, list[tuple[_TrackInfo, np.ndarray, float, np.ndarray]]]] = []
        self.pending_frames = 0
        self.last_frame = -1
        self.touched: dict[int, _TrackInfo] = {}

    def add(self, frame: Frame, crops: list, touched: list[_TrackInfo], state: dict) -> None:
        if crops:
            self.pending.append((frame, crops))
        for t in touched:
            self.touched[t.tracker_id] = t
        self.pending_frames += 1
        self.last_frame = frame.index
        self.state = dict(state)
        if self.pending_frames >= self.config.commit_every:
            self.flush()

    def flush(self) -> None:
        if self.pending_frames == 0:
            return
        t0 = time.perf_counter()
        rows = []
        for frame, crops in self.pending:
            for info, box, score, emb in crops:
                crop = extract_crop(frame.image, box)
                rel = crop_relpath(self.video_id, frame.index, info.tracker_id)
                target = self.crop_root / rel
                tmp = target.with_name(target.name + ".tmp")
                tmp.write_bytes(encode_jpeg(crop, self.config.jpeg_quality))
                tmp.replace(target)  # atomic: a file under its final name is always complete
                rows.append({
                    "tracker_id": info.tracker_id, "frame_index": int(frame.index), "timestamp": float(frame.timestamp),
                    "x1": float(box[0]), "y1": float(box[1]), "x2": float(box[2]), "y2": float(box[3]),
                    "score": float(score), "blur": blur_score(crop), "path": rel,
                    "embedding": np.asarray(emb, "<f2").tobytes(),
                })
        t1 = time.perf_counter()
        touched = list(self.touched.values())
        batch = CommitBatch(
            last_frame=self.last_frame,
            state=dict(self.state),
            tracks=[{"tracker_id": t.tracker_id, "first_frame": t.first_frame, "last_frame": t.last_frame,
                     "shot_index": t.shot_index} for t in touched],
            crops=rows,
        )
        self.sink(batch)
        for t in touched:  # its row exists now (or will, on the driver): keep its last_frame current
            t.stored = True
        self.stats.crops += len(rows)
        self.stats.seconds["write"] += t1 - t0
        self.stats.seconds["commit"] += time.perf_counter() - t1
        self.pending, self.pending_frames, self.touched = [], 0, {}


@dataclass(frozen=True)
class VideoJob:
    """Everything needed to produce one video's crop files and rows, with no store access (picklable).

    ``start``: first source frame to process (the resume point); ``shot_index`` / ``next_track_id``: where
    a resumed run continues numbering. ``crop_root``: absolute folder the crop files go under.
    """

    video_id: int
    path: str
    crop_root: str
    config: IngestConfig
    start: int = 0
    shot_index: int = 0
    next_track_id: int = 1


@dataclass
class PreparedVideo:
    """A registered video ready to produce (driver side): the job plus what its report needs."""

    job: VideoJob
    info: VideoInfo
    fingerprint: str
    prior_report: dict
    detector_name: str
    detector_fingerprint: str
    t_start: float


def prepare_video(project: Project, path: str | Path, config: IngestConfig, detector) -> PreparedVideo | dict:
    """Probe, fingerprint and register ``path``, delete files of its uncommitted batches and compute the
    resume point. Returns the ``skipped`` report instead when the video is already ``done``.

    ``detector``: a detector instance, or a zero-argument callable building one (called only when the
    video needs work). Missing files and non-videos raise :class:`UserError` before anything is stored.
    """
    path = Path(path)
    info = probe(path)  # missing file / not a video -> UserError, nothing stored
    if not info.fps or info.fps <= 0:
        raise UserError(f"{path}: the video stream has no frame rate")
    t_start = time.perf_counter()
    fingerprint = file_fingerprint(path)
    with project.session() as s:
        existing = s.scalar(select(Video).where(Video.fingerprint == fingerprint))
        if existing is not None and existing.status == "done":
            log.info("%s is already ingested (video %d)", path, existing.id)
            return {**(existing.report or {}), "video_id": existing.id, "status": "done", "skipped": True, "path": str(path)}
    if callable(detector) and not hasattr(detector, "detect"):
        detector = detector()
    video_id, _, last_committed = _register_video(project, path, fingerprint, info, config, detector)
    removed = remove_uncommitted_files(project, video_id)
    if removed:
        log.info("removed %d uncommitted crop files of video %d", removed, video_id)
    with project.session() as s:
        v = s.get(Video, video_id)
        resume = dict((v.params or {}).get("resume") or {})
        max_tid = s.scalar(select(func.max(Track.tracker_id)).where(Track.video_id == video_id)) or 0
        max_shot = s.scalar(select(func.max(Track.shot_index)).where(Track.video_id == video_id))
        prior_report = v.report or {}
    start = last_committed + 1
    shot_index = (max(resume.get("shot_index", 0), max_shot or 0) + 1) if start > 0 else 0
    next_id = max(int(resume.get("next_track_id", 1)), max_tid + 1)
    job = VideoJob(video_id=video_id, path=str(path), crop_root=str(project.crop_root.resolve()), config=config,
                   start=start, shot_index=shot_index, next_track_id=next_id)
    return PreparedVideo(job, info, fingerprint, prior_report, detector.name, detector.fingerprint, t_start)


def produce_video(job: VideoJob, sink, *, detector=None, info: VideoInfo | None = None, progress: bool = False) -> dict:
    """Decode, detect, track and write the crop files of ``job``; every ``commit_every`` processed frames
    hand one :class:`CommitBatch` to ``sink``. Never touches the store (a Ray worker runs this).

    Returns the production counters: frames_decoded, frames_processed, detections, tracked_boxes, tracks,
    crops, shots, seconds per stage, error (a truncated/corrupt stream: the frames before it are
    produced) and the detector's name and fingerprint. Re-raises whatever stopped a stage, after every
    thread has stopped.
    """
    from portrait_builder.track import JDETracker, ShotCutDetector, TrackerConfig

    config = job.config
    path = Path(job.path)
    if info is None:
        info = probe(path)
    if detector is None:
        detector = create_detector(config.detector, weights=config.weights, device=config.device, **config.detector_options)
    tracker_cfg = TrackerConfig(**config.tracker) if config.tracker else TrackerConfig()
    start, shot_index, next_id = job.start, job.shot_index, job.next_track_id

    stats = _Stats()
    tracks: dict[int, _TrackInfo] = {}
    writer = _Writer(Path(job.crop_root), job.video_id, config, stats, sink, {"shot_index": shot_index, "next_track_id": next_id})
    failure = _Failure()
    q_frames: queue.Queue = queue.Queue(maxsize=config.queue_size)
    q_dets: queue.Queue = queue.Queue(maxsize=config.queue_size)
    q_write: queue.Queue = queue.Queue(maxsize=config.queue_size)
    reader = VideoReader(path, stride=config.track_stride, start=start, info=info)

    def decode():
        try:
            it = iter(reader)
            while True:
                t0 = time.perf_counter()
                frame = next(it, None)
                stats.seconds["decode"] += time.perf_counter() - t0
                if frame is None or not _put(q_frames, frame, failure):
                    break
        except BaseException as exc:
            failure.set(exc)
        finally:
            reader.close()
            _put(q_frames, _END, failure)  # a blocking put could wait forever on a full queue after a failure

    def detect():
        try:
            done = False
            while not done:
                batch = []
                while len(batch) < max(1, detector.batch_size):
                    item = _get(q_frames, failure)
                    if item is _END:
                        done = True
                        break
                    batch.append(item)
                if batch:
                    t0 = time.perf_counter()
                    results = detector.detect([f.image for f in batch])
                    stats.seconds["detect"] += time.perf_counter() - t0
                    for f, d in zip(batch, results, strict=True):
                        if not _put(q_dets, (f, d), failure):
                            return
        except BaseException as exc:
            failure.set(exc)
        finally:
            _put(q_dets, _END, failure)

    def write():
        try:
            while True:
                item = _get(q_write, failure)
                if item is _END:
                    break
                writer.add(*item)
            if failure.exc is None:
                writer.flush()
        except BaseException as exc:
            failure.set(exc)

    mot_file = _open_mot(config.mot_out, start) if config.mot_out else None
    total = None
    if info.frame_count:
        total = max(0, len(range(start + (-start) % config.track_stride, info.frame_count, config.track_stride)))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=path.name[:30], unit="frame", dynamic_ncols=True, leave=True)
    threads = [threading.Thread(target=fn, name=f"ingest-{fn.__name__}", daemon=True) for fn in (decode, detect, write)]
    for t in threads:
        t.start()
    tracker = JDETracker(tracker_cfg, frame_rate=info.fps / config.track_stride, first_id=next_id)
    shots = ShotCutDetector() if config.shot_cuts else None
    step = 0
    n_tracks = 0
    try:
        while True:
            item = _get(q_dets, failure)
            if item is _END:
                break
            frame, dets = item
            t0 = time.perf_counter()
            if shots is not None and shots.is_cut(frame.image):
                tracker.reset()
                shot_index += 1
            tracked: Detections = tracker.update(_canonical_order(dets))
            crops, touched = [], []
            for k in range(len(tracked)):
                tid = int(tracked.track_ids[k])
                info_t = tracks.get(tid)
                if info_t is None:
                    info_t = tracks[tid] = _TrackInfo(tid, shot_index, frame.index, frame.index)
                    n_tracks += 1
                info_t.last_frame = frame.index
                box, score = tracked.xyxy[k], float(tracked.scores[k])
                due = info_t.last_crop_step is None or step - info_t.last_crop_step >= config.crop_every
                if due and (box[3] - box[1]) >= config.min_height and score >= config.min_score:
                    crops.append((info_t, box.copy(), score, tracked.embeddings[k].copy()))
                    info_t.last_crop_step = step
                    touched.append(info_t)
                elif info_t.stored:
                    touched.append(info_t)  # keep last_frame of a stored track current
            # Tracks that never got a crop are not stored: a track row always has crops.
            if mot_file is not None:
                for k in range(len(tracked)):
                    x1, y1, x2, y2 = (float(v) for v in tracked.xyxy[k])
                    mot_file.write(f"{frame.index + 1},{int(tracked.track_ids[k])},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{float(tracked.scores[k]):.4f},-1,-1,-1\n")
            state = {"shot_index": shot_index, "next_track_id": tracker.next_id}
            stats.seconds["track"] += time.perf_counter() - t0
            stats.frames += 1
            stats.detections += len(dets)
            stats.tracked_boxes += len(tracked)
            step += 1
            if not _put(q_write, (frame, crops, touched, state), failure):
                break
            if bar is not None:
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(tracks=n_tracks, crops=stats.crops, refresh=False)
    except BaseException as exc:
        failure.set(exc)
    finally:
        _put(q_write, _END, failure)
        for t in threads:
            t.join()
        if bar is not None:
            bar.set_postfix(tracks=n_tracks, crops=stats.crops)
            bar.close()
        if mot_file is not None:
            mot_file.close()
    if failure.exc is not None:
        raise failure.exc
    return {
        "frames_decoded": (reader.last_index + 1 - start) if reader.last_index >= 0 else 0,
        "frames_processed": stats.frames,
        "detections": stats.detections,
        "tracked_boxes": stats.tracked_boxes,
        "tracks": n_tracks,
        "crops": stats.crops,
        "shots": shot_index + 1,
        "seconds": dict(stats.seconds),
        "error": reader.error,
        "detector": {"name": detector.name, "fingerprint": detector.fingerprint},
    }


def finish_video(project: Project, prepared: PreparedVideo, produced: dict) -> dict:
    """Build the per-video report from the production counters, mark the video done or partial and write
    ``PROJECT/reports/<id>_<stem>.json``."""
    job, info, config = prepared.job, prepared.info, prepared.job.config
    status = "partial" if produced["error"] else "done"
    wall = time.perf_counter() - prepared.t_start
    prev = prepared.prior_report.get("cumulative") or {}
    report = {
        "video_id": job.video_id,
        "path": str(Path(job.path).resolve()),
        "fingerprint": prepared.fingerprint,
        "status": status,
        "error": produced["error"],
        "resumed_from_frame": job.start if job.start > 0 else None,
        **{k: produced[k] for k in ("frames_decoded", "frames_processed", "detections", "tracked_boxes", "tracks", "crops", "shots")},
        "seconds": {**{k: round(v, 3) for k, v in produced["seconds"].items()}, "wall": round(wall, 3)},
        "fps_end_to_end": round(produced["frames_processed"] / wall, 2) if wall > 0 else None,
        "detector": {"name": prepared.detector_name, "fingerprint": prepared.detector_fingerprint},
        "video": {"width": info.width, "height": info.height, "fps": info.fps, "frame_count": info.frame_count},
        "config": config.to_dict(),
    }
    report["cumulative"] = {
        k: int(prev.get(k, 0)) + int(report[k]) for k in ("frames_processed", "detections", "tracks", "crops")
    }
    _mark(project, job.video_id, status, produced["error"], report)
    _write_report(project, job.video_id, Path(job.path), report)
    return report


def ingest_video(project: Project, path: str | Path, config: IngestConfig | None = None, progress: bool = True, *, detector=None) -> dict:
    """Ingest one video into ``project``; returns the per-video report (also stored in ``videos.report``
    and written to ``PROJECT/reports/<video id>_<stem>.json``).

    Missing files and non-videos raise :class:`UserError` before anything is stored. A truncated or
    corrupt stream keeps every crop before the bad point and returns ``status == "partial"`` with the
    reason in ``error``. A video already ``done`` (same content fingerprint) is not ingested again:
    the report has ``skipped: True``. ``detector``: a ready detector instance (else built from config).
    """
    config = config or IngestConfig()
    built: list = [detector] if detector is not None else []

    def build():
        if not built:
            built.append(create_detector(config.detector, weights=config.weights, device=config.device, **config.detector_options))
        return built[0]

    prepared = prepare_video(project, path, config, build)
    if isinstance(prepared, dict):
        return prepared
    video_id = prepared.job.video_id
    try:
        produced = produce_video(prepared.job, lambda batch: commit_batch(project, video_id, batch),
                                 detector=built[0], info=prepared.info, progress=progress)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        _mark(project, video_id, "failed", f"{type(exc).__name__}: {exc}", None)
        raise
    return finish_video(project, prepared, produced)



def _open_mot(path: str, start: int):
    """Open the MOT file for appending; on resume keep only the rows of frames before ``start``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if start > 0 and p.exists():
        keep = [ln for ln in p.read_text(encoding="utf-8").splitlines() if ln and int(float(ln.split(",")[0])) <= start]
        p.write_text("".join(ln + "\n" for ln in keep), encoding="utf-8")
        return p.open("a", encoding="utf-8")
    return p.open("w", encoding="utf-8")


def _mark(project: Project, video_id: int, status: str, error: str | None, report: dict | None) -> None:
    def fn(s):
        v = s.get(Video, video_id)
        v.status = status
        v.error = error
        if report is not None:
            v.report = report

    project.run_write(fn)


def _write_report(project: Project, video_id: int, path: Path, report: dict) -> Path:
    folder = project.root / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{video_id:05d}_{path.stem}.json"
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(target)
    return target
