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
from sqlalchemy import delete, func, select

from portrait_builder.detect import Detections, create_detector
from portrait_builder.errors import UserError
from portrait_builder.ingest.config import IngestConfig
from portrait_builder.ingest.crops import blur_score, encode_jpeg, extract_crop
from portrait_builder.store import Crop, Project, Track, Video
from portrait_builder.video import Frame, VideoReader, probe

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
    db_id: int | None = None


class _Failure:
    def __init__(self):
        self.exc: BaseException | None = None
        self.stop = threading.Event()

    def set(self, exc: BaseException) -> None:
        if self.exc is None:
            self.exc = exc
        self.stop.set()


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


class _Writer:
    """Crop extraction, JPEG files and store commits: one batch of processed frames per transaction."""

    def __init__(self, project: Project, video_id: int, config: IngestConfig, stats: _Stats, tracks: dict[int, _TrackInfo], resume_state: dict):
        self.project, self.video_id, self.config, self.stats, self.tracks = project, video_id, config, stats, tracks
        self.state = resume_state  # carried in videos.params["resume"]: next_track_id, shot_index
        self.folder = project.crop_root / f"v{video_id:05d}"
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
                target = self.project.crop_root / rel
                tmp = target.with_name(target.name + ".tmp")
                tmp.write_bytes(encode_jpeg(crop, self.config.jpeg_quality))
                tmp.replace(target)  # atomic: a file under its final name is always complete
                rows.append((info, frame, box, score, blur_score(crop), emb, rel))
        t1 = time.perf_counter()
        touched, last_frame, state = list(self.touched.values()), self.last_frame, dict(self.state)

        def commit(s):
            for info in touched:
                if info.db_id is None:
                    tr = Track(video_id=self.video_id, tracker_id=info.tracker_id, first_frame=info.first_frame,
                               last_frame=info.last_frame, shot_index=info.shot_index)
                    s.add(tr)
                    s.flush()
                    info.db_id = tr.id
                else:
                    tr = s.get(Track, info.db_id)
                    tr.last_frame = info.last_frame
            s.add_all(
                Crop(video_id=self.video_id, track_id=info.db_id, frame_index=frame.index, timestamp=float(frame.timestamp),
                     x1=float(box[0]), y1=float(box[1]), x2=float(box[2]), y2=float(box[3]), score=float(score),
                     blur=blur, path=rel, embedding=np.asarray(emb, "<f2").tobytes())
                for info, frame, box, score, blur, emb, rel in rows
            )
            v = s.get(Video, self.video_id)
            v.last_committed_frame = last_frame
            params = dict(v.params or {})
            params["resume"] = state
            v.params = params

        new_ids = [t for t in touched if t.db_id is None]
        try:
            self.project.run_write(commit)
        except BaseException:
            for t in new_ids:  # the transaction rolled back: those rows do not exist
                t.db_id = None
            raise
        self.stats.crops += len(rows)
        self.stats.seconds["write"] += t1 - t0
        self.stats.seconds["commit"] += time.perf_counter() - t1
        self.pending, self.pending_frames, self.touched = [], 0, {}


def ingest_video(project: Project, path: str | Path, config: IngestConfig | None = None, progress: bool = True, *, detector=None) -> dict:
    """Ingest one video into ``project``; returns the per-video report (also stored in ``videos.report``
    and written to ``PROJECT/reports/<video id>_<stem>.json``).

    Missing files and non-videos raise :class:`UserError` before anything is stored. A truncated or
    corrupt stream keeps every crop before the bad point and returns ``status == "partial"`` with the
    reason in ``error``. A video already ``done`` (same content fingerprint) is not ingested again:
    the report has ``skipped: True``. ``detector``: a ready detector instance (else built from config).
    """
    from portrait_builder.track import JDETracker, ShotCutDetector, TrackerConfig

    config = config or IngestConfig()
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
    if detector is None:
        detector = create_detector(config.detector, weights=config.weights, device=config.device, **config.detector_options)
    tracker_cfg = TrackerConfig(**config.tracker) if config.tracker else TrackerConfig()
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
    resumed = start > 0
    shot_index = (max(resume.get("shot_index", 0), max_shot or 0) + 1) if resumed else 0
    next_id = max(int(resume.get("next_track_id", 1)), max_tid + 1)

    stats = _Stats()
    tracks: dict[int, _TrackInfo] = {}
    writer = _Writer(project, video_id, config, stats, tracks, {"shot_index": shot_index, "next_track_id": next_id})
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
            q_frames.put(_END)

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
            q_dets.put(_END)

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
            tracked: Detections = tracker.update(dets)
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
                elif info_t.db_id is not None:
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
        q_write.put(_END)
        for t in threads:
            t.join()
        if bar is not None:
            bar.set_postfix(tracks=n_tracks, crops=stats.crops)
            bar.close()
        if mot_file is not None:
            mot_file.close()
    if failure.exc is not None:
        if isinstance(failure.exc, KeyboardInterrupt):
            raise failure.exc
        _mark(project, video_id, "failed", f"{type(failure.exc).__name__}: {failure.exc}", None)
        if isinstance(failure.exc, UserError):
            raise failure.exc
        raise failure.exc

    status = "partial" if reader.error else "done"
    wall = time.perf_counter() - t_start
    prev = prior_report.get("cumulative") or {}
    report = {
        "video_id": video_id,
        "path": str(path.resolve()),
        "fingerprint": fingerprint,
        "status": status,
        "error": reader.error,
        "resumed_from_frame": start if resumed else None,
        "frames_decoded": (reader.last_index + 1 - start) if reader.last_index >= 0 else 0,
        "frames_processed": stats.frames,
        "detections": stats.detections,
        "tracked_boxes": stats.tracked_boxes,
        "tracks": n_tracks,
        "crops": stats.crops,
        "shots": shot_index + 1,
        "seconds": {**{k: round(v, 3) for k, v in stats.seconds.items()}, "wall": round(wall, 3)},
        "fps_end_to_end": round(stats.frames / wall, 2) if wall > 0 else None,
        "detector": {"name": detector.name, "fingerprint": detector.fingerprint},
        "video": {"width": info.width, "height": info.height, "fps": info.fps, "frame_count": info.frame_count},
        "config": config.to_dict(),
    }
    report["cumulative"] = {
        k: int(prev.get(k, 0)) + int(report[k]) for k in ("frames_processed", "detections", "tracks", "crops")
    }
    _mark(project, video_id, status, reader.error, report)
    _write_report(project, video_id, path, report)
    return report


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


def delete_video_crops(project: Project, video_id: int) -> None:  # pragma: no cover - helper for tools
    project.run_write(lambda s: s.execute(delete(Crop).where(Crop.video_id == video_id)))
