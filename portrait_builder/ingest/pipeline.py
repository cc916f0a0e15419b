"""``ingest_video``: decode -> detect -> track -> crop, into the project store, resumable.

Stages run concurrently with bounded queues (memory stays flat with video length):

    ffmpeg (one process, video/streams.py) ─┬─ working frames (scaled by ffmpeg) ─► detect thread ──┐
      letterbox cropped, three pipes        ├─ full-res picture at crop frames ──► (crops cut here) │
                                            └─ thumbnails of EVERY frame ─► shot detector            │
                                                                                  │ cuts             ▼
                          writer thread ◄──q── main thread: wait for the cut decision, tracker ◄─backlog
                          (JPEG, pHash, files, store commits)

- Detection sees only the picture area (black bars found once per video, ``video/letterbox.py``) at
  the working size (longer side ``IngestConfig.working_size``, square pixels); boxes and face boxes
  are mapped back to the stored source pixel grid, which is what the store keeps.
- Crops are taken on a fixed schedule: at every ``crop_every``-th processed frame (source index a
  multiple of ``stride * crop_every``, the stride from ``IngestConfig.stride_for``), for every tracked person at once. The schedule is known
  before decoding, so ffmpeg sends full-resolution frames for those frames only, and the crops (256x128,
  1:2 in displayed proportions) are cut as soon as the frame and its detections are there; the
  full frame is dropped at once. The tracker then decides which candidates belong to a track.
- The shot detector sees every frame (cuts at frame accuracy whatever the stride) and may decide late
  (look-ahead); the tracking loop waits until every frame up to the one it tracks is decided, resets
  the tracker at each cut, and no track spans a cut. While it waits, the detect stage may run ahead
  past its usual bound (``_Backlog``), by as many frames as the shot detector's look-ahead.

Crash safety: the writer handles ``commit_every`` processed frames at a time: it writes each crop to a
``.tmp`` name and renames it, then commits the batch's track and crop rows together with
``videos.last_committed_frame`` in ONE transaction. A kill between rename and commit leaves files without
rows; the next run deletes every file of the video that no row names (and every ``.tmp``) before it
resumes after ``last_committed_frame``. So: no duplicate rows (resume starts after the committed frame),
no orphan files, no missing crops. Each crop row carries the pHash of the JPEG file it names (hashed
right after writing, bit-identical to ``imagehash.phash``), so releases need no hashing pass.

Produce and sink are separate: ``produce_video(job, sink)`` decodes, detects, tracks and writes crop files
(deterministic names) and hands each batch of rows (:class:`CommitBatch`) to ``sink``; it never opens
the store. ``ingest_video`` passes ``commit_batch`` as the sink; the Ray executor (``executors.py``)
collects the batches on a worker and commits them on the driver with the same function.

Tracker state is not persisted: a resumed run starts new tracks at the resume frame, with ids after
the largest id stored (``JDETracker(first_id=...)``), in a new shot index (the resume point is not
listed in ``shot_cuts``: it is not a cut in the film). A person visible across the resume point
therefore gets two tracks; ids never collide.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from sqlalchemy import func, select

from portrait_builder.common import atomic_write_bytes, atomic_write_text, file_digest, put_unless_stopped
from portrait_builder.detect import Detections, Detector, create_detector
from portrait_builder.errors import UserError
from portrait_builder.ingest.config import IngestConfig
from portrait_builder.ingest.crops import blur_score, encode_jpeg, extract_crop
from portrait_builder.ingest.report import (
    DetectorIdentity,
    IngestTotals,
    ProducedVideo,
    VideoProperties,
    VideoReport,
    VideoStatus,
)
from portrait_builder.store import Crop, Project, Track, Video
from portrait_builder.video import Frame, VideoInfo, probe
from portrait_builder.video.letterbox import PictureArea, detect_picture_area
from portrait_builder.video.streams import FilmDecoder, StreamPlan, working_size

log = logging.getLogger(__name__)

_END = object()



def crop_relpath(video_id: int, frame_index: int, tracker_id: int) -> str:
    """Deterministic crop path (relative to the crop root): a re-run writes the same names."""
    return f"v{video_id:05d}/f{frame_index:08d}_t{tracker_id:06d}.jpg"


_STAGES = ("letterbox", "decode", "detect", "crop", "shots", "track", "write", "phash", "commit")


@dataclass
class _Stats:
    frames: int = 0
    detections: int = 0
    tracked_boxes: int = 0
    crops: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_STAGES, 0.0))


@dataclass
class _TrackInfo:
    tracker_id: int
    shot_index: int
    first_frame: int
    last_frame: int
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


def _get(q: queue.Queue, failure: _Failure):
    while True:
        try:
            return q.get(timeout=0.2)
        except queue.Empty:
            if failure.stop.is_set():
                return _END


class _Backlog:
    """The detect -> track queue: bounded at ``limit`` items, except while the consumer waits for a
    shot decision. A shot detector with look-ahead needs thumbnails beyond the frame being tracked, and
    ffmpeg only produces them while every stream is read; a hard bound there would deadlock. The
    overshoot is the look-ahead (in processed frames): small items (boxes and a few 256x128 crops)."""

    def __init__(self, limit: int, failure: _Failure):
        self.items: deque = deque()
        self.limit, self.failure = limit, failure
        self.cond = threading.Condition()
        self.consumer_waits = False

    def put(self, item) -> bool:
        with self.cond:
            while len(self.items) >= self.limit and not self.consumer_waits:
                if self.failure.stop.is_set():
                    return False
                self.cond.wait(0.2)
            self.items.append(item)
            self.cond.notify_all()
        return True

    def get(self):
        with self.cond:
            while not self.items:
                if self.failure.stop.is_set():
                    return _END
                self.cond.wait(0.2)
            item = self.items.popleft()
            self.cond.notify_all()
            return item

    def waiting(self, flag: bool) -> None:
        with self.cond:
            self.consumer_waits = flag
            self.cond.notify_all()


class _ShotFeed:
    """Bridge from the thumbnail reader (``push`` every frame) to the tracking loop (``cuts_until``).

    Shot detectors count frames from 0; a resumed run starts at ``start``, so indices are shifted by it.
    """

    def __init__(self, detector, failure: _Failure, backlog: _Backlog, stats: _Stats, start: int = 0):
        self.detector, self.failure, self.backlog, self.stats = detector, failure, backlog, stats
        self.offset = start
        self.cond = threading.Condition()
        self.pending: deque[int] = deque()
        self.decided = -1
        self.ended = False

    def push(self, index: int, frame: np.ndarray) -> None:
        t0 = time.perf_counter()
        new = self.detector.push(index - self.offset, frame)
        decided = self.detector.decided_until + self.offset
        self.stats.seconds["shots"] += time.perf_counter() - t0
        with self.cond:
            self.pending.extend(c + self.offset for c in new)
            self.decided = decided
            self.cond.notify_all()

    def end(self) -> None:
        new = self.detector.finish()
        with self.cond:
            self.pending.extend(c + self.offset for c in new)
            self.ended = True
            self.cond.notify_all()

    def cuts_until(self, index: int) -> list[int] | None:
        """Cuts at or before ``index`` not returned before, once every frame up to ``index`` is decided
        (None when the run is stopping)."""
        with self.cond:
            if not (self.ended or self.decided >= index):
                self.backlog.waiting(True)
                try:
                    while not (self.ended or self.decided >= index):
                        if self.failure.stop.is_set():
                            return None
                        self.cond.wait(0.2)
                finally:
                    self.backlog.waiting(False)
            out = []
            while self.pending and self.pending[0] <= index:
                out.append(self.pending.popleft())
            return out


def create_shots(name: str | None):
    """The shot boundary detector ``name`` (None: the track package's default); unknown names are a
    UserError listing the valid ones."""
    from portrait_builder.track import DEFAULT_SHOT_DETECTOR, create_shot_detector

    return create_shot_detector(name or DEFAULT_SHOT_DETECTOR)


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



@dataclass(frozen=True)
class TrackRow:
    """A track as stored: first/last processed frame and its shot."""

    tracker_id: int
    first_frame: int
    last_frame: int
    shot_index: int


@dataclass(frozen=True)
class CropRow:
    """One written crop as stored. Boxes in stored source pixels (xyxy). ``blur`` is the sharpness
    (variance of the Laplacian, high = sharp); ``phash``: signed 64-bit pHash of the written file;
    ``face_visible``: None when the detector gives no face information; ``face``: its box or None;
    ``embedding``: float16 little-endian bytes."""

    tracker_id: int
    frame_index: int
    timestamp: float
    xyxy: tuple[float, float, float, float]
    score: float
    blur: float
    path: str
    embedding: bytes
    phash: int | None
    shot_index: int
    face_visible: bool | None = None
    face: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class CommitBatch:
    """One batch of processed frames as plain rows (no ORM; picklable, so a Ray worker can return it).

    tracks: every track that got a crop in this batch or was stored before and is still alive.
    last_frame: the last processed source frame of the batch; state: the resume state after it.
    """

    last_frame: int
    state: dict
    tracks: tuple[TrackRow, ...] = ()
    crops: tuple[CropRow, ...] = ()


class CommitSink(Protocol):
    """Where :func:`produce_video` hands each finished :class:`CommitBatch`, from its writer thread, in
    frame order: :func:`commit_batch` bound to a project and video (``ingest_video``), or a list's
    ``append`` (a Ray worker, whose driver commits later). What it returns is ignored."""

    def __call__(self, batch: CommitBatch, /) -> object: ...


def commit_batch(project: Project, video_id: int, batch: CommitBatch) -> int:
    """Commit one batch in ONE transaction: tracks upserted by (video, tracker id), crops inserted only
    where (video, frame, track) is absent, ``videos.last_committed_frame`` and the resume state advanced.

    Idempotent: committing the same batch twice changes nothing the second time (a retried Ray task, a
    driver re-committing a result). Returns the number of crops inserted.
    """
    tracker_ids = [t.tracker_id for t in batch.tracks]

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
            got = stored.get(t.tracker_id)
            if got is None:
                tr = Track(video_id=video_id, tracker_id=t.tracker_id, first_frame=t.first_frame,
                           last_frame=t.last_frame, shot_index=t.shot_index)
                s.add(tr)
                s.flush()
                track_db[t.tracker_id] = tr.id
            else:
                track_db[t.tracker_id] = got[0]
                if t.last_frame > got[2] or t.first_frame < got[1]:
                    tr = s.get(Track, got[0])
                    tr.first_frame, tr.last_frame = min(got[1], t.first_frame), max(got[2], t.last_frame)
        present: set[tuple[int, int]] = set()
        if batch.crops:
            frames = [c.frame_index for c in batch.crops]
            present = {
                (f, tr)
                for f, tr in s.execute(
                    select(Crop.frame_index, Crop.track_id).where(
                        Crop.video_id == video_id, Crop.frame_index >= min(frames), Crop.frame_index <= max(frames)
                    )
                )
            }
        new = [c for c in batch.crops if (c.frame_index, track_db[c.tracker_id]) not in present]
        s.add_all(_crop_model(video_id, track_db[c.tracker_id], c) for c in new)
        v = s.get(Video, video_id)
        v.last_committed_frame = max(v.last_committed_frame, batch.last_frame)
        params = dict(v.params or {})
        params["resume"] = dict(batch.state)
        v.params = params
        return len(new)

    return project.run_write(fn)


def _crop_model(video_id: int, track_id: int, c: CropRow) -> Crop:
    face = c.face or (None, None, None, None)
    return Crop(video_id=video_id, track_id=track_id, frame_index=c.frame_index, timestamp=c.timestamp,
                x1=c.xyxy[0], y1=c.xyxy[1], x2=c.xyxy[2], y2=c.xyxy[3], score=c.score, blur=c.blur, path=c.path,
                embedding=c.embedding, phash=c.phash, shot_index=c.shot_index, face_visible=c.face_visible,
                face_x1=face[0], face_y1=face[1], face_x2=face[2], face_y2=face[3])


@dataclass(frozen=True)
class CropToWrite:
    """A crop the tracking loop decided to keep: the 256x128 image (cut in the detect stage) and its row
    fields; the writer turns it into a file and a :class:`CropRow`."""

    tracker_id: int
    frame_index: int
    timestamp: float
    xyxy: tuple[float, float, float, float]
    score: float
    embedding: np.ndarray
    face: tuple[float, float, float, float] | None
    face_known: bool
    shot_index: int
    image: np.ndarray


class _Writer:
    """JPEG files, sharpness and pHash for ``commit_every`` processed frames at a time; each finished batch
    of rows goes to ``sink`` (the store commit locally, a list on a Ray worker)."""

    def __init__(self, crop_root: Path, video_id: int, config: IngestConfig, stats: _Stats, sink: CommitSink,
                 resume_state: dict):
        from portrait_builder.dedup.phash import phash_files_checked, to_signed

        self._phash, self._signed = phash_files_checked, to_signed
        self.crop_root, self.video_id, self.config, self.stats, self.sink = crop_root, video_id, config, stats, sink
        self.state = resume_state  # carried in videos.params["resume"]
        self.folder = crop_root / f"v{video_id:05d}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pending: list[CropToWrite] = []
        self.pending_frames = 0
        self.last_frame = -1
        self.touched: dict[int, _TrackInfo] = {}

    def add(self, frame_index: int, crops: list[CropToWrite], touched: list[_TrackInfo], state: dict) -> None:
        self.pending.extend(crops)
        for t in touched:
            self.touched[t.tracker_id] = t
        self.pending_frames += 1
        self.last_frame = frame_index
        self.state = state
        if self.pending_frames >= self.config.commit_every:
            self.flush()

    def flush(self) -> None:
        if self.pending_frames == 0:
            return
        t0 = time.perf_counter()
        files, blurs = [], []
        for c in self.pending:
            rel = crop_relpath(self.video_id, c.frame_index, c.tracker_id)
            target = self.crop_root / rel
            atomic_write_bytes(target, encode_jpeg(c.image, self.config.jpeg_quality))  # never a half file
            files.append((rel, target))
            blurs.append(blur_score(c.image))
        t1 = time.perf_counter()
        # The hash of the file just written (still in the page cache), by dedup's bit-identical path.
        hashes, ok = self._phash([t for _, t in files], pool=False)
        signed = self._signed(hashes)
        t2 = time.perf_counter()
        rows = tuple(
            CropRow(tracker_id=c.tracker_id, frame_index=c.frame_index, timestamp=c.timestamp, xyxy=c.xyxy,
                    score=c.score, blur=blurs[k], path=files[k][0], embedding=np.asarray(c.embedding, "<f2").tobytes(),
                    phash=int(signed[k]) if ok[k] else None, shot_index=c.shot_index,
                    face_visible=(c.face is not None) if c.face_known else None, face=c.face)
            for k, c in enumerate(self.pending)
        )
        touched = list(self.touched.values())
        batch = CommitBatch(
            last_frame=self.last_frame,
            state=dict(self.state),
            tracks=tuple(TrackRow(t.tracker_id, t.first_frame, t.last_frame, t.shot_index) for t in touched),
            crops=rows,
        )
        self.sink(batch)
        for t in touched:  # its row exists now (or will, on the driver): keep its last_frame current
            t.stored = True
        self.stats.crops += len(rows)
        self.stats.seconds["write"] += t1 - t0
        self.stats.seconds["phash"] += t2 - t1
        self.stats.seconds["commit"] += time.perf_counter() - t2
        self.pending, self.pending_frames, self.touched = [], 0, {}


@dataclass(frozen=True)
class VideoJob:
    """Everything needed to produce one video's crop files and rows, with no store access (picklable).

    ``start``: first source frame to process (the resume point); ``shot_index`` / ``next_track_id``: where
    a resumed run continues numbering; ``shot_cuts``: cuts found before the resume point.
    ``crop_root``: absolute folder the crop files go under.
    """

    video_id: int
    path: str
    crop_root: str
    config: IngestConfig
    start: int = 0
    shot_index: int = 0
    next_track_id: int = 1
    shot_cuts: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Detected:
    """One processed frame leaving the detect stage: its detections in source pixels and, at crop frames,
    the crop image of each detection worth a crop (None for the others)."""

    index: int
    timestamp: float
    dets: Detections
    crops: tuple[np.ndarray | None, ...] | None


def produce_video(job: VideoJob, sink: CommitSink, *, detector: Detector | None = None, info: VideoInfo | None = None,
                  progress: bool = False) -> ProducedVideo:
    """Decode, detect, track and write the crop files of ``job``; every ``commit_every`` processed frames
    hand one :class:`CommitBatch` to ``sink``. Never touches the store (a Ray worker runs this).

    Returns the production counters (:class:`ProducedVideo`). Re-raises whatever stopped a stage, after
    every thread has stopped.
    """
    from portrait_builder.track import JDETracker, TrackerConfig

    config = job.config
    path = Path(job.path)
    if info is None:
        info = probe(path)
    if detector is None:
        detector = create_detector(config.detector, weights=config.weights, device=config.device, **config.detector_options)
    tracker_cfg = TrackerConfig(**config.tracker) if config.tracker else TrackerConfig()
    start, shot_index, next_id = job.start, job.shot_index, job.next_track_id
    shot_cuts = tuple(job.shot_cuts)  # a tuple, replaced on change: the per-frame resume state shares it
    stats = _Stats()

    t0 = time.perf_counter()
    area = detect_picture_area(path, info) if config.letterbox else PictureArea.full(info)
    stats.seconds["letterbox"] = time.perf_counter() - t0
    shots = create_shots(config.shot_detector) if config.shot_cuts else None
    stride = config.stride_for(info.fps)
    crop_period = stride * config.crop_every
    plan = StreamPlan(info, area, working_size(area, info.sar, config.working_size), stride=stride,
                      start=start, full_every=crop_period, thumb_size=tuple(shots.frame_size) if shots else None)
    offset = np.array([area.x, area.y, area.x, area.y], np.float32)
    log.info("%s: picture area %s of %dx%d (sar %.4g), working size %dx%d", path.name, area.as_list(),
             info.width, info.height, info.sar, *plan.work_size)

    tracks: dict[int, _TrackInfo] = {}
    writer = _Writer(Path(job.crop_root), job.video_id, config, stats, sink,
                     {"shot_index": shot_index, "next_track_id": next_id, "shot_cuts": shot_cuts})
    failure = _Failure()
    backlog = _Backlog(config.queue_size, failure)
    q_write: queue.Queue = queue.Queue(maxsize=config.queue_size)
    feed = _ShotFeed(shots, failure, backlog, stats, start) if shots else None
    decoder = FilmDecoder(path, plan, queue_size=config.queue_size,
                          on_thumbnail=feed.push if feed else None, on_thumbnails_end=feed.end if feed else None)
    error: list[str | None] = [None]

    def candidates(frame: Frame, dets: Detections) -> tuple | None:
        """Crop images of the detections worth a crop, cut from the full-resolution frame (crop frames only)."""
        if frame.index % crop_period:
            return None
        # Taken even when no box needs it: ffmpeg waits until each full frame is read.
        full = decoder.full_frame(frame.index)
        keep = (dets.heights >= config.min_height) & (dets.scores >= config.min_score)
        if full is None or not keep.any():
            return tuple(None for _ in range(len(dets)))
        return tuple(extract_crop(full, dets.xyxy[k] - offset, info.sar) if keep[k] else None for k in range(len(dets)))

    def detect():
        try:
            done = False
            while not done and not failure.stop.is_set():
                batch = []
                t0 = time.perf_counter()
                while len(batch) < max(1, detector.batch_size):
                    frame = decoder.next_frame()
                    if frame is None:
                        done = True
                        break
                    batch.append(frame)
                stats.seconds["decode"] += time.perf_counter() - t0
                if not batch:
                    break
                t0 = time.perf_counter()
                results = detector.detect([f.image for f in batch])
                t1 = time.perf_counter()
                stats.seconds["detect"] += t1 - t0
                for f, d in zip(batch, results, strict=True):
                    d = _canonical_order(Detections(plan.to_source(d.xyxy), d.scores, d.embeddings, None,
                                                    None if d.faces is None else plan.to_source(d.faces)))
                    t2 = time.perf_counter()
                    item = _Detected(f.index, f.timestamp, d, candidates(f, d))
                    stats.seconds["crop"] += time.perf_counter() - t2
                    if not backlog.put(item):
                        return
            if done:
                error[0] = decoder.finish()
        except BaseException as exc:
            failure.set(exc)
        finally:
            backlog.put(_END)  # returns at once when stopping: the consumer then stops on its own

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
        total = max(0, len(range(start + (-start) % stride, info.frame_count, stride)))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=path.name[:30], unit="frame", dynamic_ncols=True, leave=True)
    tracker = JDETracker(tracker_cfg, frame_rate=info.fps / stride, first_id=next_id)
    threads = [threading.Thread(target=fn, name=f"ingest-{fn.__name__}", daemon=True) for fn in (detect, write)]
    decoder.start()
    for t in threads:
        t.start()
    step = 0
    n_tracks = 0
    try:
        while True:
            item = backlog.get()
            if item is _END:
                break
            t0 = time.perf_counter()
            if feed is not None:
                cuts = feed.cuts_until(item.index)
                if cuts is None:
                    break
                if cuts:
                    tracker.reset()
                    tracks.clear()  # no track crosses a cut: the ones of earlier shots never come back
                    shot_index += len(cuts)
                    shot_cuts = (*shot_cuts, *cuts)
            t1 = time.perf_counter()
            dets = item.dets
            tracked: Detections = tracker.update(dets)
            rows = tracker.last_detection_indices
            face_known = dets.faces is not None
            crops, touched = [], []
            for k in range(len(tracked)):
                tid = int(tracked.track_ids[k])
                info_t = tracks.get(tid)
                if info_t is None:
                    info_t = tracks[tid] = _TrackInfo(tid, shot_index, item.index, item.index)
                    n_tracks += 1
                info_t.last_frame = item.index
                image = item.crops[int(rows[k])] if item.crops is not None else None
                if image is not None:
                    face = None
                    if face_known and not np.isnan(tracked.faces[k]).any():
                        face = tuple(float(v) for v in tracked.faces[k])
                    crops.append(CropToWrite(
                        tracker_id=tid, frame_index=item.index, timestamp=float(item.timestamp),
                        xyxy=tuple(float(v) for v in tracked.xyxy[k]), score=float(tracked.scores[k]),
                        embedding=tracked.embeddings[k].copy(), face=face, face_known=face_known,
                        shot_index=shot_index, image=image))
                    touched.append(info_t)
                elif info_t.stored:
                    touched.append(info_t)  # keep last_frame of a stored track current
            # Tracks that never got a crop are not stored: a track row always has crops.
            if mot_file is not None:
                for k in range(len(tracked)):
                    x1, y1, x2, y2 = (float(v) for v in tracked.xyxy[k])
                    mot_file.write(f"{item.index + 1},{int(tracked.track_ids[k])},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{float(tracked.scores[k]):.4f},-1,-1,-1\n")
            state = {"shot_index": shot_index, "next_track_id": tracker.next_id, "shot_cuts": shot_cuts}
            stats.seconds["track"] += time.perf_counter() - t1
            stats.frames += 1
            stats.detections += len(dets)
            stats.tracked_boxes += len(tracked)
            step += 1
            if not put_unless_stopped(q_write, (item.index, crops, touched, state), failure.stop):
                break
            if bar is not None:
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(tracks=n_tracks, crops=stats.crops, shots=shot_index + 1, refresh=False)
    except BaseException as exc:
        failure.set(exc)
    finally:
        if failure.exc is not None:
            decoder.close()  # unblocks the readers and the detect stage
        put_unless_stopped(q_write, _END, failure.stop)
        for t in threads:
            t.join()
        decoder.close()
        if bar is not None:
            bar.set_postfix(tracks=n_tracks, crops=stats.crops, shots=shot_index + 1)
            bar.close()
        if mot_file is not None:
            mot_file.close()
    if failure.exc is not None:
        raise failure.exc
    last = decoder.last_index
    return ProducedVideo(
        frames_decoded=(last + 1 - start) if last >= 0 else 0,
        frames_processed=stats.frames,
        detections=stats.detections,
        tracked_boxes=stats.tracked_boxes,
        tracks=n_tracks,
        crops=stats.crops,
        shots=shot_index + 1,
        shot_cuts=shot_cuts,
        shot_detector=shots.name if shots else None,
        picture_area=(area.x, area.y, area.width, area.height),
        sar=info.sar,
        working_size=plan.work_size,
        track_stride=stride,
        seconds=dict(stats.seconds),
        error=error[0],
        detector=DetectorIdentity(detector.name, detector.fingerprint),
    )


@dataclass(frozen=True)
class PreparedVideo:
    """A registered video ready to produce (driver side): the job plus what its report needs.

    ``prior``: the totals of the video's earlier runs (zero for a first run), which its report adds to.
    """

    job: VideoJob
    info: VideoInfo
    fingerprint: str
    prior: IngestTotals
    detector: DetectorIdentity
    t_start: float


def prepare_video(project: Project, path: str | Path, config: IngestConfig,
                  detector: Detector | Callable[[], Detector]) -> PreparedVideo | VideoReport:
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
    fingerprint = file_digest(path)
    with project.session() as s:
        existing = s.scalar(select(Video).where(Video.fingerprint == fingerprint))
        if existing is not None and existing.status == "done":
            log.info("%s is already ingested (video %d)", path, existing.id)
            return VideoReport(video_id=existing.id, path=str(path), fingerprint=fingerprint, status="done", skipped=True)
    if not isinstance(detector, Detector):
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
        prior = (v.report or {}).get("cumulative") or {}
    start = last_committed + 1
    shot_index = (max(resume.get("shot_index", 0), max_shot or 0) + 1) if start > 0 else 0
    next_id = max(int(resume.get("next_track_id", 1)), max_tid + 1)
    cuts = tuple(int(c) for c in resume.get("shot_cuts") or ()) if start > 0 else ()
    job = VideoJob(video_id=video_id, path=str(path), crop_root=str(project.crop_root.resolve()), config=config,
                   start=start, shot_index=shot_index, next_track_id=next_id, shot_cuts=cuts)
    totals = IngestTotals(**{k: int(prior.get(k, 0)) for k in ("frames_processed", "detections", "tracks", "crops")})
    return PreparedVideo(job, info, fingerprint, totals, DetectorIdentity(detector.name, detector.fingerprint), t_start)


def finish_video(project: Project, prepared: PreparedVideo, produced: ProducedVideo) -> VideoReport:
    """Build the per-video report from the production counters, mark the video done or partial and write
    ``PROJECT/reports/<id>_<stem>.json``."""
    job, info, prior = prepared.job, prepared.info, prepared.prior
    status: VideoStatus = "partial" if produced.error else "done"
    wall = time.perf_counter() - prepared.t_start
    report = VideoReport(
        video_id=job.video_id,
        path=str(Path(job.path).resolve()),
        fingerprint=prepared.fingerprint,
        status=status,
        error=produced.error,
        resumed_from_frame=job.start if job.start > 0 else None,
        frames_decoded=produced.frames_decoded,
        frames_processed=produced.frames_processed,
        detections=produced.detections,
        tracked_boxes=produced.tracked_boxes,
        tracks=produced.tracks,
        crops=produced.crops,
        shots=produced.shots,
        shot_cuts=produced.shot_cuts,
        shot_detector=produced.shot_detector,
        picture_area=produced.picture_area,
        working_size=produced.working_size,
        track_stride=produced.track_stride,
        seconds={**{k: round(v, 3) for k, v in produced.seconds.items()}, "wall": round(wall, 3)},
        fps_end_to_end=round(produced.frames_processed / wall, 2) if wall > 0 else None,
        # seconds of video ingested per second of wall time (what "1.5x real time" means)
        realtime_ratio=round(produced.frames_decoded / info.fps / wall, 3) if wall > 0 and info.fps else None,
        detector=prepared.detector,
        video=VideoProperties(info.width, info.height, info.fps, info.frame_count, info.sar),
        config=job.config,
        cumulative=IngestTotals(
            frames_processed=prior.frames_processed + produced.frames_processed,
            detections=prior.detections + produced.detections,
            tracks=prior.tracks + produced.tracks,
            crops=prior.crops + produced.crops,
        ),
    )
    _mark(project, job.video_id, status, produced.error, report)
    _write_report(project, job.video_id, Path(job.path), report)
    return report


def ingest_video(project: Project, path: str | Path, config: IngestConfig | None = None, progress: bool = True, *,
                 detector: Detector | None = None) -> VideoReport:
    """Ingest one video into ``project``; returns the per-video report (also stored in ``videos.report``
    and written to ``PROJECT/reports/<video id>_<stem>.json``).

    Missing files and non-videos raise :class:`UserError` before anything is stored. A truncated or
    corrupt stream keeps every crop before the bad point and returns ``status == "partial"`` with the
    reason in ``error``. A video already ``done`` (same content fingerprint) is not ingested again:
    the report has ``skipped`` set. ``detector``: a ready detector instance (else built from config).
    """
    config = config or IngestConfig()
    built: list[Detector] = [detector] if detector is not None else []

    def build() -> Detector:
        if not built:
            built.append(create_detector(config.detector, weights=config.weights, device=config.device, **config.detector_options))
        return built[0]

    prepared = prepare_video(project, path, config, build)
    if isinstance(prepared, VideoReport):
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


def _mark(project: Project, video_id: int, status: VideoStatus, error: str | None, report: VideoReport | None) -> None:
    def fn(s):
        v = s.get(Video, video_id)
        v.status = status
        v.error = error
        if report is not None:
            v.report = report.to_dict()

    project.run_write(fn)


def _write_report(project: Project, video_id: int, path: Path, report: VideoReport) -> Path:
    folder = project.root / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{video_id:05d}_{path.stem}.json"
    return atomic_write_text(target, json.dumps(report.to_dict(), indent=2, sort_keys=True))
