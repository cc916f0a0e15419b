"""Crop images for the app: decoded off the UI thread by a small thread pool into an LRU cache.

Decoding happens in worker threads into ``QImage`` (safe outside the GUI thread); the UI thread only
turns a cached image into a scaled ``QPixmap``. A miss (an image asked for before its prefetch
finished) decodes synchronously so the window never shows a blank crop.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QImage, QPixmap


def _decode(path: str) -> QImage:
    image = QImage(path)
    if image.isNull():  # a missing or broken file shows as a grey placeholder, not a crash
        image = QImage(128, 256, QImage.Format.Format_RGB32)
        image.fill(QColor(90, 90, 90))
    return image


class ImageCache:
    """LRU of decoded crops keyed by path, with background prefetch."""

    def __init__(self, max_images: int = 1024, threads: int = 2):
        self._images: OrderedDict[str, QImage] = OrderedDict()
        self._pixmaps: OrderedDict[tuple[str, int, int], QPixmap] = OrderedDict()
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="crop-decode")
        self.max_images = max_images
        self.hits = 0
        self.misses = 0

    def _store(self, key: str, image: QImage) -> None:
        with self._lock:
            self._images[key] = image
            self._images.move_to_end(key)
            self._pending.discard(key)
            while len(self._images) > self.max_images:
                self._images.popitem(last=False)

    def _load(self, key: str) -> None:
        try:
            self._store(key, _decode(key))
        finally:
            with self._lock:
                self._pending.discard(key)

    def prefetch(self, paths: Iterable[str | Path | None]) -> None:
        """Queue decodes of the images not cached or already on their way."""
        for p in paths:
            if p is None:
                continue
            key = str(p)
            with self._lock:
                if key in self._images or key in self._pending:
                    continue
                self._pending.add(key)
            self._pool.submit(self._load, key)

    def image(self, path: str | Path) -> QImage:
        key = str(path)
        with self._lock:
            image = self._images.get(key)
            if image is not None:
                self._images.move_to_end(key)
                self.hits += 1
                return image
            self.misses += 1
        image = _decode(key)
        self._store(key, image)
        return image

    def pixmap(self, path: str | Path | None, size: QSize) -> QPixmap:
        """A pixmap of the crop scaled to fit ``size`` (cached; pixmaps live on the UI thread only)."""
        if path is None:
            pm = QPixmap(size)
            pm.fill(QColor(60, 60, 60))
            return pm
        key = (str(path), size.width(), size.height())
        pm = self._pixmaps.get(key)
        if pm is None:
            pm = QPixmap.fromImage(self.image(path)).scaled(
                size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
            self._pixmaps[key] = pm
            while len(self._pixmaps) > 2 * self.max_images:
                self._pixmaps.popitem(last=False)
        else:
            self._pixmaps.move_to_end(key)
        return pm

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Block until queued prefetches finish (tests and benchmarks only)."""
        import time

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if not self._pending:
                    return
            time.sleep(0.005)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
