"""The PySide6 annotation app: thin widgets over portrait_builder.annotation (no SQL here)."""

from __future__ import annotations

import ctypes
import sys


def _pin_none() -> bool:
    """Make ``None`` immortal on CPython < 3.12, as CPython 3.12+ does itself (PEP 683).

    The PySide6 6.12 wheels return ``None`` from void methods (``setToolTip``, ``setChecked``,
    ``show``, ``QPainter`` calls, ...) without taking a reference. On Python 3.11 every such call
    drops one reference to None (about a dozen per rendered crop, more with a full grid), and after
    some thousands of clicks the interpreter aborts with "deallocating None". Adding 2**40 to its
    count means it never reaches zero. Release builds only: a debug build's object header differs.
    """
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12) or hasattr(sys, "gettotalrefcount"):
        return False
    ctypes.c_ssize_t.from_address(id(None)).value += 1 << 40
    return True


NONE_PINNED = _pin_none()
