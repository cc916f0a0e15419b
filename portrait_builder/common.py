"""Small helpers every stage needs once: a file's digest, crash-safe writes, configs from mappings, and
a put on a bounded queue that a stop event interrupts.

Kept free of heavy imports (no NumPy, no torch) so any module may use them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from portrait_builder.errors import UserError

_CHUNK = 1 << 20

T = TypeVar("T")


def file_digest(path: str | Path, chunk: int = _CHUNK) -> str:
    """sha256 hex digest of a file's bytes, streamed (memory stays flat for a film)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary name beside ``path``, then rename it over ``path``.

    The rename is atomic on one file system, so a file under its final name is always complete: a
    crash leaves either the old file or the new one, plus at worst a ``.tmp`` that the next write
    replaces.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def config_from_mapping(cls: type[T], values: Mapping[str, Any], what: str) -> T:
    """Build the frozen dataclass ``cls`` from a (YAML) mapping; an unknown key is one UserError line
    listing the valid ones (a typo in a config file must not pass silently)."""
    if not isinstance(values, Mapping):
        raise UserError(f"{what}: expected a mapping of settings, got {type(values).__name__}")
    valid = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - valid)
    if unknown:
        raise UserError(f"{what}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    return cls(**values)


def put_unless_stopped(q: queue.Queue, item: Any, stop: threading.Event, drop: Callable[[], bool] | None = None) -> bool:
    """Put ``item`` on the bounded queue ``q``, waiting in 0.2 s steps so that setting ``stop`` ends the
    wait: False then (the item is not queued), True once it is. Where ``drop()`` turns true while waiting,
    nobody will take the item any more: it is let go and counts as put."""
    while not stop.is_set():
        if drop is not None and drop():
            return True
        try:
            q.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False
