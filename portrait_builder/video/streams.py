"""One ffmpeg process, three raw streams: what film ingest needs and nothing more reaches Python.

    source ─► crop (letterbox) ─► split ─┬─► select every S-th ─► scale to working size ─► fd A  (detection)
                                         ├─► every frame ─► scale to the shot detector's size ─► fd B  (cuts)
                                         └─► select every (S*C)-th ─► picture area, stored pixels ─► fd C  (crops)

Why this shape:
- Detection runs on frames scaled down BY FFMPEG (swscale, area filter, in C) to a working size; a
  1080p frame never crosses the pipe for detection. Non-square pixels are made square in the same
  scale, so the detector sees true proportions.
- The shot detector gets EVERY frame (cuts at frame accuracy however sparse detection is), but as a
  thumbnail: 48x27x3 bytes a frame.
- Full-resolution frames only at the crop schedule (every ``full_every``-th frame, a multiple of the
  stride), known in advance, so ffmpeg drops the others before the RGB conversion.
- ffmpeg writes each output to its own pipe (``pipe:FD``; the fds are inherited). Each pipe has its
  own reader thread: ffmpeg blocks on an output whose pipe is full and then feeds none of the others,
  so a pipe nobody reads stalls all of them. The working and full-resolution readers hand frames on
  through queues that are bounded (memory flat) except while the consumer waits (see
  :class:`_Channels`); the thumbnail reader calls ``on_thumbnail`` directly.
- Frame numbers: every ``select`` uses the decoder's own frame number ``n`` (0-based decode order)
  and timing is passthrough, so the k-th frame of a branch has a known source index; timestamps come
  from ``showinfo`` on the working branch (the other branches' frames are the same instants).
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from portrait_builder.errors import UserError
from portrait_builder.video.decode import (
    SHORTFALL_TOLERANCE,
    FfmpegLog,
    Frame,
    VideoInfo,
    ffmpeg_exe,
    read_exact,
    read_raw_frame,
)
from portrait_builder.video.letterbox import PictureArea

log = logging.getLogger(__name__)

_END = object()


def working_size(area: PictureArea, sar: float, longest: int) -> tuple[int, int]:
    """(width, height) of square-pixel working frames whose longer side is ``longest`` (never upscaled;
    ``longest`` 0: the picture area's display size). Even numbers, as most scalers prefer."""
    dw, dh = area.width * sar, float(area.height)
    scale = min(1.0, longest / max(dw, dh)) if longest > 0 else 1.0
    return max(2, int(round(dw * scale / 2)) * 2), max(2, int(round(dh * scale / 2)) * 2)


@dataclass(frozen=True)
class StreamPlan:
    """What to decode. ``stride``: working frames are the indices >= ``start`` that are multiples of it;
    ``full_every``: full-resolution frames at indices >= ``start`` that are multiples of it (a multiple of
    ``stride``; None: none); ``thumb_size``: (width, height) of the every-frame thumbnails (None: none)."""

    info: VideoInfo
    area: PictureArea
    work_size: tuple[int, int]
    stride: int = 1
    start: int = 0
    full_every: int | None = None
    thumb_size: tuple[int, int] | None = None

    def __post_init__(self):
        if self.stride < 1:
            raise UserError(f"stride must be >= 1, got {self.stride}")
        if self.full_every is not None and (self.full_every < 1 or self.full_every % self.stride):
            raise UserError(f"full-resolution frames every {self.full_every} must be a multiple of the stride {self.stride}")

    @property
    def scale(self) -> tuple[float, float]:
        """Stored source pixels per working pixel, (x, y)."""
        return self.area.width / self.work_size[0], self.area.height / self.work_size[1]

    def to_source(self, xyxy: np.ndarray) -> np.ndarray:
        """Working-frame boxes (N, 4) -> stored source pixels (float32; NaN rows stay NaN)."""
        sx, sy = self.scale
        b = np.asarray(xyxy, np.float32).reshape(-1, 4)
        return (b * np.array([sx, sy, sx, sy], np.float32) + np.array([self.area.x, self.area.y] * 2, np.float32)).astype(np.float32)

    def first_index(self, every: int) -> int:
        return self.start + (-self.start) % every


class _Channels:
    """The working-frame and full-frame queues between their reader threads and the one consumer.

    ffmpeg does not keep its outputs in step: the full-resolution branch can run several frames ahead of
    the working branch (seen with ffmpeg 5.1 on a 40-frame clip: about one ingest in ten hung). A reader
    blocked on a full queue stops draining its pipe; ffmpeg then blocks writing that output and produces
    nothing for the others, and a consumer waiting for a frame of another stream waits forever. So each
    queue is bounded only while the consumer is not waiting: while it waits for one stream, the other
    readers keep reading (the overshoot is ffmpeg's skew between its outputs, a few frames) and every
    pipe keeps draining.
    """

    def __init__(self, limits: dict[str, int], stop: threading.Event):
        self._limits = dict(limits)
        self._items: dict[str, deque] = {name: deque() for name in limits}
        self._cond = threading.Condition()
        self._stop = stop
        self._consumer_waits = False

    def put(self, name: str, item, drop: Callable[[], bool] | None = None) -> bool:
        """Queue ``item`` on stream ``name``; False (not queued) once stopping. Where ``drop()`` turns true
        while waiting, nobody will take the item any more: it is let go and counts as put."""
        with self._cond:
            items = self._items[name]
            while len(items) >= self._limits[name] and not self._consumer_waits:
                if self._stop.is_set():
                    return False
                if drop is not None and drop():
                    return True
                self._cond.wait(0.2)
            if self._stop.is_set():
                return False
            items.append(item)
            self._cond.notify_all()
            return True

    def append(self, name: str, item) -> None:
        """Queue ``item`` whatever the bound (the consumer putting an end marker back)."""
        with self._cond:
            self._items[name].append(item)
            self._cond.notify_all()

    def get(self, name: str, timeout: float = 0.2):
        """The next item of stream ``name``; ``queue.Empty`` after ``timeout`` seconds without one, during
        which the readers of every stream may exceed their bound."""
        with self._cond:
            items = self._items[name]
            if not items:
                self._consumer_waits = True
                self._cond.notify_all()
                try:
                    self._cond.wait_for(lambda: bool(items), timeout)
                finally:
                    self._consumer_waits = False
                if not items:
                    raise queue.Empty
            item = items.popleft()
            self._cond.notify_all()
            return item


class FilmDecoder:
    """Decode ``plan`` with one ffmpeg process. Use inside ``with``; read working frames with
    :meth:`next_frame` (None at the end), full-resolution frames with :meth:`full_frame` (in order),
    then :meth:`finish`;
    thumbnails arrive through ``on_thumbnail(index, image)`` on the reader thread and
    ``on_thumbnails_end()`` once after the last. :attr:`error` (after the end) says why a stream ended
    early, like :class:`VideoReader`.
    """

    def __init__(self, path: str | os.PathLike, plan: StreamPlan, *, queue_size: int = 16,
                 on_thumbnail: Callable[[int, np.ndarray], None] | None = None,
                 on_thumbnails_end: Callable[[], None] | None = None):
        self.path, self.plan = str(path), plan
        self.on_thumbnail, self.on_thumbnails_end = on_thumbnail, on_thumbnails_end
        self._stop = threading.Event()
        # A full frame is taken by the detect stage right after its working frame: two in hand while the
        # detect stage works (a 1080p frame is 6 MB); more only while it waits (see _Channels).
        self._queues = _Channels({"work": max(1, queue_size), "full": 2}, self._stop)
        self._log = FfmpegLog()
        self._threads: list[threading.Thread] = []
        self._proc: subprocess.Popen | None = None
        self.error: str | None = None
        self.last_index = -1
        self.thumbnails = 0
        self._reader_failure: BaseException | None = None
        self._draining = False

    # -- command --------------------------------------------------------------------------------------
    def _select(self, every: int) -> str:
        conds = []
        if self.plan.start > 0:
            conds.append(f"gte(n,{self.plan.start})")
        if every > 1:
            conds.append(f"not(mod(n,{every}))")
        return "*".join(conds)

    def command(self, fds: dict[str, int]) -> list[str]:
        """The ffmpeg command line writing each branch to ``pipe:<fd>`` (built with ffmpeg-python)."""
        import ffmpeg

        p, a = self.plan, self.plan.area
        src = ffmpeg.input(self.path)["v:0"]
        if not a.is_full(p.info):
            src = src.crop(a.x, a.y, a.width, a.height)
        branches = [name for name in ("work", "thumb", "full") if name in fds]
        split = src.split() if len(branches) > 1 else None
        outs = []
        for k, name in enumerate(branches):
            s = split[k] if split is not None else src
            every = {"work": p.stride, "thumb": 1, "full": p.full_every or 1}[name]
            cond = self._select(every)
            if cond:
                s = s.filter("select", cond)
            if name == "work":
                if p.work_size != (a.width, a.height):
                    s = s.filter("scale", p.work_size[0], p.work_size[1], flags="area")
                s = s.filter("showinfo")
            elif name == "thumb":
                s = s.filter("scale", p.thumb_size[0], p.thumb_size[1], flags="area")
            outs.append(s.output(f"pipe:{fds[name]}", format="rawvideo", pix_fmt="bgr24", fps_mode="passthrough"))
        out = ffmpeg.merge_outputs(*outs) if len(outs) > 1 else outs[0]
        args = out.global_args("-hide_banner", "-nostats", "-nostdin", "-loglevel", "level+info").get_args()
        return [ffmpeg_exe(), *args]

    # -- lifecycle ------------------------------------------------------------------------------------
    def __enter__(self) -> FilmDecoder:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        p = self.plan
        sizes = {"work": (p.work_size[0] * p.work_size[1] * 3)}
        if p.thumb_size is not None:
            sizes["thumb"] = p.thumb_size[0] * p.thumb_size[1] * 3
        if p.full_every is not None:
            sizes["full"] = p.area.width * p.area.height * 3
        pipes = {name: os.pipe() for name in sizes}
        cmd = self.command({name: w for name, (_, w) in pipes.items()})
        log.debug("decode: %s", " ".join(cmd))
        try:
            self._proc = subprocess.Popen(cmd, pass_fds=[w for _, w in pipes.values()], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        finally:
            for _, w in pipes.values():
                os.close(w)  # ffmpeg holds the write ends; EOF reaches us when it exits
        targets = {"work": self._read_work, "thumb": self._read_thumbs, "full": self._read_full}
        self._threads = [threading.Thread(target=self._read_stderr, name="ffmpeg-stderr", daemon=True)]
        for name, (r, _) in pipes.items():
            self._threads.append(threading.Thread(target=self._guard, args=(targets[name], r, sizes[name]),
                                                  name=f"ffmpeg-{name}", daemon=True))
        for t in self._threads:
            t.start()

    def close(self) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        for t in self._threads:
            t.join(timeout=10)
        if proc is not None:
            proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()

    # -- readers --------------------------------------------------------------------------------------
    def _guard(self, fn, fd: int, size: int) -> None:
        try:
            with open(fd, "rb", buffering=0) as f:
                fn(f, size)
        except BaseException as exc:  # surfaced to the consumer by next_frame / full_frame
            if not self._stop.is_set():
                self._reader_failure = self._reader_failure or exc
                self._stop.set()

    def _put(self, name: str, item) -> bool:
        return self._queues.put(name, item, drop=(lambda: self._draining) if name == "full" else None)

    def _read_work(self, f, size: int) -> None:
        w, h = self.plan.work_size
        first = self.plan.first_index(self.plan.stride)
        out_n = 0
        try:
            while not self._stop.is_set():
                buf = read_raw_frame(f, size, self._log)
                if buf is None:
                    break
                index = first + out_n * self.plan.stride
                frame = Frame(index, self._timestamp(out_n, index), np.frombuffer(buf, np.uint8).reshape(h, w, 3))
                out_n += 1
                if not self._put("work", frame):
                    return
        finally:
            self._put("work", _END)

    def _read_full(self, f, size: int) -> None:
        a = self.plan.area
        every = self.plan.full_every
        first = self.plan.first_index(every)
        out_n = 0
        try:
            while not self._stop.is_set():
                buf = read_exact(f, size)
                if buf is None or len(buf) < size:
                    break
                index = first + out_n * every
                out_n += 1
                if not self._put("full", (index, np.frombuffer(buf, np.uint8).reshape(a.height, a.width, 3))):
                    return
        finally:
            self._put("full", (None, None))

    def _read_thumbs(self, f, size: int) -> None:
        w, h = self.plan.thumb_size
        index = self.plan.start
        while not self._stop.is_set():
            buf = read_exact(f, size)
            if buf is None or len(buf) < size:
                break
            self.on_thumbnail(index, np.frombuffer(buf, np.uint8).reshape(h, w, 3))
            index += 1
            self.thumbnails += 1
        if not self._stop.is_set() and self.on_thumbnails_end is not None:
            self.on_thumbnails_end()

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        self._log.read(self._proc.stderr)

    def _timestamp(self, out_n: int, index: int) -> float:
        t = self._log.pts(out_n)
        fps = self.plan.info.fps
        if t is None or t != t:
            return index / fps if fps else float(index)
        return t

    # -- consumer side --------------------------------------------------------------------------------
    def next_frame(self) -> Frame | None:
        """The next working frame, or None after the last (then :attr:`error` is final)."""
        while True:
            try:
                item = self._queues.get("work")
                break
            except queue.Empty:
                if self._reader_failure is not None:
                    raise self._reader_failure from None
                if self._stop.is_set():  # closed: no end marker comes (a reader does not queue once stopping)
                    return None
        if item is _END:
            if self._reader_failure is not None:
                raise self._reader_failure
            self._queues.append("work", _END)  # later calls see the end too
            return None
        self.last_index = item.index
        return item

    def full_frame(self, index: int) -> np.ndarray | None:
        """The full-resolution picture-area frame ``index`` (call in increasing order, only for indices on
        the schedule). None when the stream ended before it."""
        while True:
            try:
                got, image = self._queues.get("full")
            except queue.Empty:
                if self._reader_failure is not None:
                    raise self._reader_failure from None
                if self._stop.is_set():
                    return None
                continue
            if got is None:
                self._queues.append("full", (None, None))  # keep the end marker for later calls
                return None
            if got == index:
                return image
            if got > index:  # the stream skipped it (cannot happen with passthrough timing)
                log.warning("full-resolution frame %d missing (got %d)", index, got)
                return None

    def finish(self) -> str | None:
        """After :meth:`next_frame` returned None and every wanted full frame was taken: wait for ffmpeg and
        the readers (thumbnails included) and set :attr:`error`, which is also returned."""
        self._draining = True  # a full frame nobody will take must not hold ffmpeg up
        proc = self._proc
        rc = proc.wait() if proc is not None else 0
        for t in self._threads:
            t.join(timeout=10)
        if self._reader_failure is not None:
            raise self._reader_failure
        self.error = self._verdict(rc)
        return self.error

    def _verdict(self, rc: int) -> str | None:
        if self._log.errors:
            return f"decode error after frame {self.last_index}: {self._log.errors[0]}"
        if rc != 0:
            return f"ffmpeg exited with status {rc} after frame {self.last_index}"
        declared = self.plan.info.frame_count
        stride = self.plan.stride
        if declared:
            expected_last = (declared - 1) - ((declared - 1) % stride)
            if expected_last >= self.plan.start and self.last_index < expected_last - max(2, SHORTFALL_TOLERANCE * declared):
                return (
                    f"stream ended at frame {self.last_index} but the container declares {declared} frames "
                    "(truncated file?)"
                )
        return None
