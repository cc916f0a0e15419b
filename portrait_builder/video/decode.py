"""Decode a video as a stream of BGR frames through one ffmpeg process.

How it works (and why):
- ffmpeg writes raw ``bgr24`` frames to a pipe; one frame is read at a time, so memory stays flat
  however long the movie is.
- Timing is ``-fps_mode passthrough``: ffmpeg's default output rate conversion duplicates or drops
  frames (the PETS09 clip gives 797 frames instead of its 795). Every frame keeps its own index
  (decode order, 0-based) and its own timestamp (``pts_time`` of the frame, read from ffmpeg's
  ``showinfo`` filter on stderr).
- Frames tracking does not need never reach Python: the ``select`` filter drops them inside ffmpeg
  (before the bgr24 conversion and the pipe), so a stride of S costs 1/S of the conversion and copy.
  The codec still has to decode every frame (inter-frame compression), which ffmpeg does in C.
- Metadata comes from ffprobe when it is on PATH; otherwise (imageio-ffmpeg ships no ffprobe) it is
  parsed from the header ``ffmpeg -i`` prints.
- A truncated or corrupt stream yields every good frame, then :attr:`VideoReader.error` says what went
  wrong: decoder errors on stderr, a non-zero exit, or fewer frames than the container declares.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from portrait_builder.errors import UserError

log = logging.getLogger(__name__)

# A video whose decoded frame count falls short of the container's declared count by more than this
# fraction is reported truncated. Containers round their counts; a cut file misses far more.
SHORTFALL_TOLERANCE = 0.02


class DecodeError(UserError):
    """The file cannot be decoded at all (missing, not a video)."""


def ffmpeg_exe() -> str:
    """The ffmpeg binary: the one on PATH, else the one imageio-ffmpeg ships."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # pragma: no cover - depends on the install
        raise UserError(f"no ffmpeg found on PATH and imageio-ffmpeg has none ({exc})") from None


def ffprobe_exe() -> str | None:
    """ffprobe from PATH, or None (imageio-ffmpeg ships none)."""
    return shutil.which("ffprobe")


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    frame_count: int | None  # declared by the container; None when it does not say
    duration: float | None
    codec: str
    #: Sample (pixel) aspect ratio: displayed width of one stored pixel over its height. 1.0 for square
    #: pixels; DVD/TV sources have others (e.g. 32/27 for 720x480 16:9). Boxes stay in the stored
    #: pixel grid; crops use it so that they keep true proportions.
    sar: float = 1.0

    @property
    def display_width(self) -> float:
        return self.width * self.sar


@dataclass(frozen=True)
class Frame:
    index: int  # 0-based decode order in the source
    timestamp: float  # seconds (the frame's own pts)
    image: np.ndarray = field(repr=False)  # (H, W, 3) uint8 BGR


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise DecodeError(f"video not found: {p}")
    if not p.is_file():
        raise DecodeError(f"not a file: {p}")
    if p.stat().st_size == 0:
        raise DecodeError(f"not a video (empty file): {p}")
    return p


def _rate(text: str | None) -> float:
    try:
        value = float(Fraction(text)) if text else 0.0
    except (ValueError, ZeroDivisionError):
        return 0.0
    return value


def probe(path: str | os.PathLike, *, use_ffprobe: bool | None = None) -> VideoInfo:
    """Stream metadata of the first video stream. Raises :class:`DecodeError` for a non-video file."""
    p = _check_file(path)
    exe = ffprobe_exe() if use_ffprobe in (None, True) else None
    if use_ffprobe and exe is None:
        raise UserError("ffprobe requested but not found on PATH")
    if exe:
        return _probe_ffprobe(exe, p)
    return _probe_ffmpeg(p)


def _probe_ffprobe(exe: str, p: Path) -> VideoInfo:
    cmd = [exe, "-v", "error", "-select_streams", "v:0", "-show_streams", "-show_format", "-of", "json", str(p)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    try:
        data = json.loads(res.stdout or "{}")
    except json.JSONDecodeError:
        data = {}
    streams = data.get("streams") or []
    if res.returncode != 0 or not streams:
        why = (res.stderr.strip().splitlines() or ["no video stream"])[-1]
        raise DecodeError(f"not a video: {p} ({why})")
    s = streams[0]
    fps = _rate(s.get("avg_frame_rate")) or _rate(s.get("r_frame_rate"))
    nb = s.get("nb_frames")
    duration = s.get("duration") or (data.get("format") or {}).get("duration")
    duration_f = float(duration) if duration not in (None, "N/A") else None
    count = int(nb) if nb and str(nb).isdigit() and int(nb) > 0 else None
    return VideoInfo(str(p), int(s["width"]), int(s["height"]), fps, count, duration_f, s.get("codec_name", "?"),
                     _sar(s.get("sample_aspect_ratio")))


def _sar(text: str | None) -> float:
    """``"32:27"`` -> 1.185...; missing, ``N/A`` or ``0:1`` (unknown) -> 1.0."""
    num, sep, den = (text or "").partition(":")
    try:
        value = float(Fraction(int(num), int(den))) if sep else 0.0
    except (ValueError, ZeroDivisionError):
        return 1.0
    return value if value > 0 else 1.0


_STREAM_RE = re.compile(r"Stream #\d+:\d+.*?: Video: (\w+).*?, (\d{2,5})x(\d{2,5})")
_FPS_RE = re.compile(r"([\d.]+) fps")
_TBR_RE = re.compile(r"([\d.]+k?) tbr")
_SAR_RE = re.compile(r"\bSAR (\d+:\d+)")
_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")


def _probe_ffmpeg(p: Path) -> VideoInfo:
    """Parse the stream header ``ffmpeg -i FILE`` prints (it exits 1: no output named; that is expected)."""
    res = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(p)], capture_output=True, text=True)
    return parse_ffmpeg_header(res.stderr, str(p))


def parse_ffmpeg_header(stderr: str, path: str) -> VideoInfo:
    """Metadata from the text ``ffmpeg -i`` prints; frame count is unknown (ffmpeg's header has none)."""
    m = None
    for line in stderr.splitlines():
        m = _STREAM_RE.search(line)
        if m:
            fps_m = _FPS_RE.search(line) or _TBR_RE.search(line)
            sar_m = _SAR_RE.search(line)
            break
    if m is None:
        tail = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        why = tail[-1] if tail else "no video stream"
        if "At least one output file" in why:
            why = "no video stream"
        raise DecodeError(f"not a video: {path} ({why})")
    fps = 0.0
    if fps_m:
        text = fps_m.group(1)
        fps = float(text[:-1]) * 1000 if text.endswith("k") else float(text)
    d = _DURATION_RE.search(stderr)
    duration = int(d.group(1)) * 3600 + int(d.group(2)) * 60 + float(d.group(3)) if d else None
    return VideoInfo(path, int(m.group(2)), int(m.group(3)), fps, None, duration, m.group(1),
                     _sar(sar_m.group(1) if sar_m else None))


_SHOWINFO_RE = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+|NOPTS)\s+pts_time:\s*(-?[\d.e+-]+|NOPTS)")


class FfmpegLog:
    """What ffmpeg's stderr says about a decode, read on its own thread: the pts of each output frame
    (logged by the ``showinfo`` filter) and the first decoder errors."""

    MAX_ERRORS = 50  # a corrupt stream can report thousands

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pts: dict[int, float] = {}
        self._done = False
        self.errors: list[str] = []

    def read(self, stream) -> None:
        """Consume ``stream`` (ffmpeg's stderr, bytes lines) to its end."""
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if "showinfo" in line:
                m = _SHOWINFO_RE.search(line)
                if m:
                    t = m.group(3)
                    with self._cond:
                        self._pts[int(m.group(1))] = float("nan") if t == "NOPTS" else float(t)
                        self._cond.notify_all()
                continue
            if "[error]" in line or "[fatal]" in line:
                with self._cond:
                    if len(self.errors) < self.MAX_ERRORS:
                        self.errors.append(_clean(line))
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def pts(self, out_n: int) -> float | None:
        """The pts of output frame ``out_n`` (NaN: the frame has none; None: never logged)."""
        with self._cond:
            # showinfo logs a frame before ffmpeg writes it, so this wait is short; the timeout only
            # guards against a logger that stops (then the caller uses the nominal time).
            self._cond.wait_for(lambda: out_n in self._pts or self._done, timeout=5.0)
            return self._pts.pop(out_n, None)


class VideoReader:
    """Iterate the frames of a video that tracking needs.

    ``stride``: keep decoded frames whose index is a multiple of ``stride`` (selected inside ffmpeg).
    ``start``: skip frames before this index (resume), also inside ffmpeg.
    After iteration ends, :attr:`error` is None for a clean stream, else one line saying why the stream
    ended early (the frames already yielded are good). Always iterate inside ``with`` or call
    :meth:`close`, so the ffmpeg process is reaped when the consumer stops early.
    """

    def __init__(self, path: str | os.PathLike, *, stride: int = 1, start: int = 0, info: VideoInfo | None = None):
        if stride < 1:
            raise UserError(f"stride must be >= 1, got {stride}")
        self.path = _check_file(path)
        self.info = info or probe(self.path)
        self.stride = int(stride)
        self.start = max(0, int(start))
        self.error: str | None = None
        self.frames_read = 0
        self.last_index = -1
        self._proc: subprocess.Popen | None = None
        self._stderr_thread: threading.Thread | None = None
        self._log = FfmpegLog()

    # -- process --------------------------------------------------------------------------------------
    def _command(self) -> list[str]:
        import ffmpeg  # ffmpeg-python: builds the command line; we run it ourselves to own both pipes

        conds = []
        if self.start > 0:
            conds.append(f"gte(n,{self.start})")
        if self.stride > 1:
            conds.append(f"not(mod(n,{self.stride}))")
        stream = ffmpeg.input(str(self.path))["v:0"]
        if conds:
            stream = stream.filter("select", "*".join(conds))
        stream = stream.filter("showinfo")
        out = stream.output("pipe:", format="rawvideo", pix_fmt="bgr24", fps_mode="passthrough", an=None, sn=None)
        args = out.global_args("-hide_banner", "-nostats", "-nostdin", "-loglevel", "level+info").get_args()
        return [ffmpeg_exe(), *args]

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        self._log.read(self._proc.stderr)

    def _timestamp(self, out_n: int, index: int) -> float:
        t = self._log.pts(out_n)
        if t is None or t != t:
            return index / self.info.fps if self.info.fps else float(index)
        return t

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        try:
            proc.stdout.close()
        except OSError:  # the pipe of a killed ffmpeg may already be broken; the wait below reaps it
            pass
        proc.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)
        self._proc = None

    def __iter__(self) -> Iterator[Frame]:
        if self._proc is not None:
            raise RuntimeError("a VideoReader can be iterated once")
        w, h = self.info.width, self.info.height
        size = w * h * 3
        cmd = self._command()
        log.debug("decode: %s", " ".join(cmd))
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, bufsize=0)
        self._stderr_thread = threading.Thread(target=self._read_stderr, name="ffmpeg-stderr", daemon=True)
        self._stderr_thread.start()
        out_n = 0
        stdout = self._proc.stdout
        try:
            while True:
                buf = read_raw_frame(stdout, size, self._log)
                if buf is None:
                    break
                index = self._index_of(out_n)
                image = np.frombuffer(buf, np.uint8).reshape(h, w, 3)
                ts = self._timestamp(out_n, index)
                out_n += 1
                self.frames_read = out_n
                self.last_index = index
                yield Frame(index, ts, image)
            rc = self._proc.wait()
            if self._stderr_thread is not None:
                self._stderr_thread.join(timeout=10)
            self.error = self._verdict(rc)
        finally:
            self.close()

    def _index_of(self, out_n: int) -> int:
        """Source index of the out_n-th selected frame: select keeps n >= start with n % stride == 0."""
        first = self.start + (-self.start) % self.stride
        return first + out_n * self.stride

    def _verdict(self, rc: int) -> str | None:
        if self._log.errors:
            return f"decode error after frame {self.last_index}: {self._log.errors[0]}"
        if rc != 0:
            return f"ffmpeg exited with status {rc} after frame {self.last_index}"
        declared = self.info.frame_count
        if declared:
            # The last index that could have been selected, were the stream complete.
            expected_last = (declared - 1) - ((declared - 1) % self.stride)
            if expected_last >= self.start and self.last_index < expected_last - max(2, SHORTFALL_TOLERANCE * declared):
                return (
                    f"stream ended at frame {self.last_index} but the container declares {declared} frames "
                    "(truncated file?)"
                )
        return None


def read_exact(stream, size: int) -> bytearray | None:
    """Read exactly ``size`` bytes from an unbuffered pipe into one buffer (fewer only at end of stream;
    None when nothing was left)."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        k = stream.readinto(view[got:])
        if not k:
            break
        got += k
    if got == 0:
        return None
    return buf if got == size else buf[:got]


def read_raw_frame(stream, size: int, log: FfmpegLog) -> bytearray | None:
    """The next raw frame of ``size`` bytes from ffmpeg's pipe: None at the end of the stream, and after a
    last frame cut short, which ``log`` keeps as a decode error (the file is truncated)."""
    buf = read_exact(stream, size)
    if buf is not None and len(buf) < size:
        log.errors.append(f"last frame cut short ({len(buf)} of {size} bytes)")
        return None
    return buf


def _clean(line: str) -> str:
    """Drop ffmpeg's ``[component @ 0x...]`` and ``[error]`` prefixes from a log line."""
    return re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip()
