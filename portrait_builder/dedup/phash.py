"""Batched 64-bit perceptual hashes, bit-identical to ``imagehash.phash(PIL.Image.open(path))``.

imagehash (4.x) computes: ``image.convert('L')``, ``resize((32, 32), LANCZOS)``, a 2-D type-II DCT
(``scipy.fftpack.dct`` on axis 0, then axis 1), the median of the 8x8 low-frequency block, and
bit ``i`` (row-major, most significant first) = coefficient ``i`` > median.

Per image, imagehash spends most of its time outside the maths: PIL's file plugin machinery, the
decode, and a LANCZOS resize done row by row. Here the JPEG decode goes through OpenCV (the same
libjpeg-turbo algorithm with the same defaults, so the same RGB pixels; the tests compare the hashes
against imagehash's), and the grey conversion, the resize
and the DCT run on a whole stack of same-sized images at once, in exact integer arithmetic that
reproduces Pillow's fixed-point code (``Convert.c`` ``rgb2l`` and ``Resample.c``). Anything the fast
path does not understand (PNG with alpha, CMYK/progressive oddities, 16-bit, palette images) goes
through PIL itself, so every file gets the reference hash.

Hashes are unsigned 64-bit (numpy ``uint64``); the store keeps them as signed BIGINT
(:func:`to_signed` / :func:`to_unsigned`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from multiprocessing import forkserver

import numpy as np
import scipy.fftpack

try:  # optional: a thinner libjpeg-turbo binding than cv2.imdecode (same pixels, checked in the tests)
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - depends on the environment
    _simplejpeg = None
try:  # our workers are the parallelism; BLAS threads on top of them only contend
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

log = logging.getLogger(__name__)

HASH_SIZE = 8
IMG_SIZE = HASH_SIZE * 4  # imagehash's highfreq_factor=4
# Pillow Resample.c: 8-bit images are resampled with 32-8-2 = 22 fractional bits.
PRECISION_BITS = 22
LANCZOS_SUPPORT = 3.0


# -- signed <-> unsigned ------------------------------------------------------------------------
def to_signed(hashes) -> np.ndarray:
    """uint64 hashes -> int64 with the same bits (the store's BIGINT form)."""
    return np.ascontiguousarray(np.asarray(hashes, dtype=np.uint64)).view(np.int64)


def to_unsigned(values) -> np.ndarray:
    """int64 (store form) -> uint64 hashes with the same bits."""
    return np.ascontiguousarray(np.asarray(values, dtype=np.int64)).view(np.uint64)


def hash_to_hex(h: int | np.integer) -> str:
    """16 hex digits, the same text as ``str(imagehash.phash(...))``."""
    return f"{int(h) & 0xFFFFFFFFFFFFFFFF:016x}"


def hex_to_hash(text: str) -> int:
    """Inverse of :func:`hash_to_hex` (also reads ``str(imagehash.ImageHash)``)."""
    return int(text, 16)


# -- Pillow-exact pieces ------------------------------------------------------------------------
def _lanczos(x: float) -> float:
    # Resample.c lanczos_filter / sinc_filter, evaluated with the C library's sin like Pillow does.
    def sinc(v: float) -> float:
        if v == 0.0:
            return 1.0
        v = v * math.pi
        return math.sin(v) / v

    if -3.0 <= x < 3.0:
        return sinc(x) * sinc(x / 3)
    return 0.0


@lru_cache(maxsize=256)
def _resample_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Dense (in_size, out_size) matrix of Pillow's integer LANCZOS coefficients (precompute_coeffs +
    normalize_coeffs_8bpc), so one pass is ``pixels @ matrix``."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = LANCZOS_SUPPORT * filterscale
    mat = np.zeros((in_size, out_size), dtype=np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        ws = [_lanczos((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for w in ws:
            ww += w
        for x, w in enumerate(ws):
            if ww != 0.0:
                w = w / ww
            # C's (int) cast truncates toward zero, as Python's int() does.
            mat[x + xmin, xx] = int(-0.5 + w * (1 << PRECISION_BITS)) if w < 0 else int(0.5 + w * (1 << PRECISION_BITS))
    return mat


def _clip8(acc: np.ndarray) -> np.ndarray:
    # Resample.c clip8 on (sum + 2**21): >> 22, saturated to 0..255.
    return np.clip(np.floor(acc * (1.0 / (1 << PRECISION_BITS))), 0, 255)


_HALF = float(1 << (PRECISION_BITS - 1))
# Output rows (columns) resampled per GEMM: each block only multiplies the band of input rows its
# outputs touch, which for a 256 -> 32 reduction is ~40% of a dense product.
_BLOCK = 8


@lru_cache(maxsize=256)
def _resample_blocks(in_size: int, out_size: int) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """(out0, out1, in0, in1, coefficients (in1-in0, out1-out0)) per block of output positions."""
    mat = _resample_matrix(in_size, out_size)
    blocks = []
    for o0 in range(0, out_size, _BLOCK):
        o1 = min(o0 + _BLOCK, out_size)
        rows = np.flatnonzero(np.any(mat[:, o0:o1] != 0, axis=1))
        i0, i1 = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 1)
        blocks.append((o0, o1, i0, i1, np.ascontiguousarray(mat[i0:i1, o0:o1])))
    return tuple(blocks)


def _pass_h(x: np.ndarray, size: int) -> np.ndarray:
    b, h, w = x.shape
    if w == size:
        return x
    flat = x.reshape(b * h, w)
    out = np.empty((b * h, size), dtype=np.float64)
    for o0, o1, i0, i1, coef in _resample_blocks(w, size):
        np.matmul(flat[:, i0:i1], coef, out=out[:, o0:o1])
    return _clip8(out + _HALF).reshape(b, h, size)


def _pass_v(x: np.ndarray, size: int) -> np.ndarray:
    b, h, w = x.shape
    if h == size:
        return x
    out = np.empty((b, size, w), dtype=np.float64)
    for o0, o1, i0, i1, coef in _resample_blocks(h, size):
        # (out rows, band) @ (B, band, W): batched GEMM on row slabs, no transposes
        np.matmul(np.ascontiguousarray(coef.T), x[:, i0:i1, :], out=out[:, o0:o1, :])
    return _clip8(out + _HALF)


def resize_lanczos_exact(gray: np.ndarray, size: int = IMG_SIZE, order: str = "hv") -> np.ndarray:
    """Pillow's 8-bit LANCZOS resize to (size, size) on a stack (B, H, W) -> (B, size, size) float64.

    Every product and partial sum is an integer below 2**53, so float64 BLAS is exact whatever its
    summation order. Each pass rounds to 8 bits as Pillow does; ``order`` says which pass runs first
    (Pillow's choice depends on its version and the geometry: see :func:`pass_order`).
    """
    x = np.ascontiguousarray(gray, dtype=np.float64)
    if order == "hv":
        return _pass_v(_pass_h(x, size), size)
    return _pass_h(_pass_v(x, size), size)


@lru_cache(maxsize=1024)
def pass_order(height: int, width: int, size: int = IMG_SIZE) -> str | None:
    """Which pass order reproduces this Pillow's ``resize((size, size), LANCZOS)`` for this geometry.

    Pillow 13 runs the vertical pass first for some shapes (tall crops), older versions always ran
    the horizontal one first; rather than encode one version's rule, ask the installed Pillow once per
    geometry on random pixels (two images; both orders almost never agree on random data).
    Returns "hv", "vh", or None when neither matches (the caller then uses PIL itself).
    """
    from PIL import Image

    resample = getattr(Image, "Resampling", Image).LANCZOS
    rng = np.random.default_rng(height * 100003 + width)
    probes = rng.integers(0, 256, size=(2, height, width), dtype=np.uint8)
    ref = np.stack([np.asarray(Image.fromarray(p).resize((size, size), resample)) for p in probes])
    for order in ("hv", "vh"):
        if np.array_equal(resize_lanczos_exact(probes, size, order), ref):
            return order
    log.warning("no exact resize order for %dx%d images; hashing them through PIL", width, height)
    return None


def rgb_to_l_exact(rgb: np.ndarray) -> np.ndarray:
    """Pillow ``convert('L')`` of RGB: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16, channels last."""
    return bgr_to_l_exact(np.ascontiguousarray(rgb[..., ::-1])).astype(np.uint8)


# Pillow's rgb2l weights in OpenCV's BGR order, pre-divided by 2**16, plus the +0x8000 rounding term
# (as +0.5): every term is dyadic, so the float32 sum is exact and floor() gives (... + 0x8000) >> 16.
_L_MATRIX_BGR = np.array([[7471 / 65536, 38470 / 65536, 19595 / 65536, 0.5]], dtype=np.float32)


def bgr_to_l_exact(bgr: np.ndarray) -> np.ndarray:
    """Same as :func:`rgb_to_l_exact` for BGR (OpenCV order) pixels, as float32 integer values.

    ``cv2.transform`` does the weighted sum in one SIMD pass over float32 input; the sum is a
    multiple of 2**-16 below 256, which float32 holds exactly (24 bits) in any evaluation order.
    """
    import cv2

    shape = bgr.shape[:-1]
    s = cv2.transform(bgr.reshape(-1, shape[-1], 3).astype(np.float32), _L_MATRIX_BGR)
    np.floor(s, out=s)
    return s.reshape(shape)


def hashes_from_small(pixels: np.ndarray) -> np.ndarray:
    """(B, 32, 32) resized grey images (integer values) -> (B,) uint64 pHashes.

    ``scipy.fftpack.dct`` runs on the whole stack along the same axes imagehash uses; each 1-D
    transform is computed independently, so the coefficients are the same bits as one image at a time.
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    if pixels.ndim != 3 or pixels.shape[1:] != (IMG_SIZE, IMG_SIZE):
        raise ValueError(f"expected a (B, {IMG_SIZE}, {IMG_SIZE}) stack, got {pixels.shape}")
    if len(pixels) == 0:
        return np.zeros(0, dtype=np.uint64)
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=1), axis=2)
    low = dct[:, :HASH_SIZE, :HASH_SIZE].reshape(len(pixels), HASH_SIZE * HASH_SIZE)
    med = np.median(low, axis=1)
    bits = low > med[:, None]
    # First coefficient = most significant bit, as imagehash's hex string.
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


# -- decoding -----------------------------------------------------------------------------------
def _jpeg_components(data: bytes) -> int | None:
    """Number of colour components of a baseline/progressive JPEG, or None if not a JPEG we trust."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        if marker == 0xEE:  # Adobe APP14: colour transform flags PIL and OpenCV may read differently
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if marker not in (0xC0, 0xC1, 0xC2):  # lossless / arithmetic: leave to PIL
                return None
            if i + 10 > n or data[i + 4] != 8:  # 8-bit samples only
                return None
            return data[i + 9]
        i += 2 + length
    return None


def _decode_fast(path: str) -> np.ndarray | None:
    """Decoded pixels of a plain 8-bit JPEG: (H, W) grey or (H, W, 3) BGR; None to use PIL instead.

    Only what PIL opens as mode "L" or "RGB" takes this path, and OpenCV is told to ignore EXIF
    orientation (PIL's ``Image.open`` does not apply it either).
    """
    import cv2

    try:
        with open(path, "rb", buffering=0) as f:  # unbuffered: half the cost of Path.read_bytes here
            data = f.read()
    except OSError:
        return None
    comps = _jpeg_components(data)
    if comps not in (1, 3):
        return None
    if _simplejpeg is not None:
        # TurboJPEG API, same libjpeg-turbo algorithm and defaults (accurate IDCT, fancy upsampling)
        # with less per-call overhead than cv2.imdecode; no EXIF rotation either.
        try:
            if comps == 1:
                img = _simplejpeg.decode_jpeg(data, colorspace="GRAY", fastdct=False, fastupsample=False)[..., 0]
            else:
                img = _simplejpeg.decode_jpeg(data, colorspace="BGR", fastdct=False, fastupsample=False)
            return img
        except (ValueError, RuntimeError):
            return None
    buf = np.frombuffer(data, dtype=np.uint8)
    flags = cv2.IMREAD_IGNORE_ORIENTATION | (cv2.IMREAD_GRAYSCALE if comps == 1 else cv2.IMREAD_COLOR)
    img = cv2.imdecode(buf, flags)
    if img is None or img.dtype != np.uint8:
        return None
    return img


def _small_pil(path: str) -> np.ndarray:
    """The reference: PIL's own convert + resize (used for files the fast path does not take)."""
    from PIL import Image

    resample = getattr(Image, "Resampling", Image).LANCZOS
    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize((IMG_SIZE, IMG_SIZE), resample), dtype=np.float64)


# Images per resize batch. Measured on 256x128 crops (1 thread, us/image): 1 -> 253, 2 -> 221,
# 4 -> 235, 16 -> 304: the float64 stack must stay in the core's cache, so batches are small and
# the grey conversion runs per image, straight after its decode, while the pixels are still cached.
_SUB_BATCH = 2
_MAX_BATCH_PIXELS = 1 << 18


def _gray(img: np.ndarray) -> np.ndarray:
    """Decoded pixels -> exact Pillow 'L' values as floats (BGR converted, grey passed through)."""
    return bgr_to_l_exact(img) if img.ndim == 3 else img.astype(np.float32)


def _small_batch(items: list[tuple[int, np.ndarray]], paths: Sequence[str], small: np.ndarray) -> None:
    h, w = items[0][1].shape[:2]
    idx = [i for i, _ in items]
    order = pass_order(h, w)
    if order is None:
        for i in idx:
            small[i] = _small_pil(paths[i])
        return
    small[idx] = resize_lanczos_exact(np.stack([g for _, g in items]), IMG_SIZE, order)


def _hash_chunk(paths: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """Hash a chunk; returns (hashes, indices of files that could not be read)."""
    small = np.zeros((len(paths), IMG_SIZE, IMG_SIZE), dtype=np.float64)
    pending: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
    failed: list[int] = []
    for i, p in enumerate(paths):
        img = _decode_fast(p)
        if img is None:
            try:
                small[i] = _small_pil(p)
            except Exception as exc:  # unreadable / not an image: reported by the caller
                log.warning("cannot hash %s: %s", p, exc)
                failed.append(i)
            continue
        items = pending.setdefault(img.shape[:2], [])
        items.append((i, _gray(img)))
        # flush by count for crops, by pixels for big frames (float64 temporaries: 8 bytes a pixel)
        if len(items) >= _SUB_BATCH or len(items) * img.shape[0] * img.shape[1] >= _MAX_BATCH_PIXELS:
            _small_batch(items, paths, small)
            pending[img.shape[:2]] = []
    for items in pending.values():
        if items:
            _small_batch(items, paths, small)
    return hashes_from_small(small), failed


# Below this many files, hashing in this process is faster than handing the work out.
MIN_FILES_FOR_POOL = 1024
_POOLS: dict[int, ProcessPoolExecutor] = {}


def _init_worker() -> None:
    # Ctrl-C reaches the whole process group: the caller handles it (one line, resumable), and the
    # workers would otherwise each print a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One worker per core already; BLAS or OpenCV threads on top of them only contend.
    if threadpool_limits is not None:
        threadpool_limits(1, user_api="blas")
    import cv2

    cv2.setNumThreads(1)


def _process_pool(workers: int) -> ProcessPoolExecutor:
    """A long-lived pool per worker count: start-up (about 1 s of imports) is paid once per process.

    Processes, not threads: the decode releases the GIL but the per-image NumPy glue does not, and
    two threads gave 1.2x over one where two processes give 1.8x (docs/benchmarks.md). The pool
    comes from a forkserver, so workers never inherit the caller's threads, locks or connections.
    """
    pool = _POOLS.get(workers)
    if pool is None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        # Only the caller handles Ctrl-C (one line, resumable). The server starts with SIGINT ignored and
        # passes that on to every worker it forks; a Ctrl-C while the workers start waits until they are
        # up, since a caller exiting under a starting worker makes the worker print a traceback.
        with _sigint(deferred=True):
            with _sigint(deferred=False):
                forkserver.ensure_running()
            pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker)
            for started in [pool.submit(os.getpid) for _ in range(workers)]:
                started.result()
        _POOLS[workers] = pool
    return pool


@contextlib.contextmanager
def _sigint(deferred: bool):
    """SIGINT ignored (``deferred=False``) or held back and raised at the end (``deferred=True``)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    caught = []
    old = signal.signal(signal.SIGINT, (lambda *_: caught.append(True)) if deferred else signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if caught:
        raise KeyboardInterrupt


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def phash_files_checked(paths: Sequence[str | os.PathLike], workers: int | None = None, *,
                        chunk: int = 256, pool: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`phash_files` but never raises: returns (uint64 hashes, bool mask of readable files).

    ``pool``: use the worker processes (True), hash here (False), or decide by the number of files
    (None). A caller hashing a big job in small batches passes True for every batch.
    """
    paths = [os.fspath(p) for p in paths]
    out = np.zeros(len(paths), dtype=np.uint64)
    ok = np.ones(len(paths), dtype=bool)
    if not paths:
        return out, ok
    workers = default_workers() if workers is None else max(1, workers)
    if not (len(paths) >= MIN_FILES_FOR_POOL if pool is None else pool):
        workers = 1
    else:  # every worker gets a share even when the batch is small for the machine
        chunk = min(chunk, max(16, math.ceil(len(paths) / workers)))
    chunks = [(s, paths[s : s + chunk]) for s in range(0, len(paths), chunk)]
    results = None
    if workers > 1:
        try:
            parts = _process_pool(workers).map(_hash_chunk, [part for _, part in chunks])
            results = list(zip((s for s, _ in chunks), parts, strict=True))
        except BrokenProcessPool:  # a worker died (killed, out of memory): finish here instead
            log.warning("pHash worker pool broke; hashing in this process")
            _POOLS.pop(workers, None)
    if results is None:
        limits = threadpool_limits(1, user_api="blas") if threadpool_limits is not None else contextlib.nullcontext()
        with limits:
            results = [(s, _hash_chunk(part)) for s, part in chunks]
    for start, (hashes, failed) in results:
        out[start : start + len(hashes)] = hashes
        ok[[start + i for i in failed]] = False
    out[~ok] = 0
    return out, ok


def phash_files(paths: Sequence[str | os.PathLike], workers: int | None = None, *, chunk: int = 256) -> np.ndarray:
    """pHash of each image file, bit-identical to ``imagehash.phash(PIL.Image.open(p))``, as uint64.

    Large inputs are split in chunks of ``chunk`` files over ``workers`` processes (default: the
    CPUs this process may use; small inputs stay in this process). Raises ``OSError`` naming the
    first file that cannot be read as an image.
    """
    paths = [os.fspath(p) for p in paths]
    hashes, ok = phash_files_checked(paths, workers, chunk=chunk)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        raise OSError(f"cannot read image {paths[bad[0]]} ({len(bad)} unreadable file(s))")
    return hashes
