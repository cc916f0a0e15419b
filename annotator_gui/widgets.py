"""Pieces the views and the grid window build the same way: thumbnail buttons, scrolling rows, and the
call behind undo and redo.

No widget here takes the keyboard focus: every key goes to the view, which maps it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QHBoxLayout, QScrollArea, QToolButton, QWidget

from portrait_builder.errors import UserError

T = TypeVar("T")


def thumb_button(icon: QSize, *, checkable: bool = False, text_under_icon: bool = True, style: str = "") -> QToolButton:
    """A crop thumbnail as a button (a strip, a cluster's tracks, a grid page); ``style``: its stylesheet."""
    b = QToolButton()
    b.setCheckable(checkable)
    b.setIconSize(icon)
    if text_under_icon:
        b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
    b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    if style:
        b.setStyleSheet(style)
    return b


def scroll_row(height: int) -> tuple[QHBoxLayout, QScrollArea]:
    """A horizontal row in a scroll area ``height`` pixels high; returns (row, scroll area to lay out).

    The row ends in a stretch that keeps its buttons left-aligned: insert button k at index k.
    """
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addStretch(1)
    scroll = QScrollArea()
    scroll.setWidget(box)
    scroll.setWidgetResizable(True)
    scroll.setFixedHeight(height)
    scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    return row, scroll


def history_step(step: Callable[[], T | None], say: Callable[[str], None], nothing: str) -> T | None:
    """Call the service's undo or redo; ``say`` the reason when the database refuses it (a right taken
    away meanwhile) or ``nothing`` when there is nothing to step over. Returns the action, or None."""
    try:
        action = step()
    except UserError as exc:
        say(str(exc))
        return None
    if action is None:
        say(nothing)
    return action
