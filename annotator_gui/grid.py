"""The grid view: a page of unlabelled crops that share one predicted value (``portrait prelabel``),
most confident first. Every crop starts ticked; the annotator clicks the wrong ones to untick them and
Enter accepts the rest as labels (provenance ``accepted``), one undoable action. Opened from the
attribute view with G; a thin widget over :class:`portrait_builder.annotation.AnnotationService`.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from annotator_gui.images import ImageCache
from annotator_gui.widgets import history_step, thumb_button
from portrait_builder.annotation import AnnotationService
from portrait_builder.annotation.predictions import GRID_PAGE, Grid
from portrait_builder.errors import UserError

THUMB = QSize(64, 128)
COLUMNS = 8  # 6 x 8 = GRID_PAGE thumbnails
STYLE = "QToolButton:checked{border:3px solid #2a8;} QToolButton:!checked{border:3px solid #c33; background:#422;}"


class GridWindow(QWidget):
    """Pick a predicted value; untick the wrong crops; Enter accepts the ticked ones and shows the next page.

    Keys: Enter accept the ticked crops · N next page without accepting · A tick / untick all ·
    Ctrl+Z undo the last accept · Esc close.
    """

    accepted = Signal()  # labels were written (or undone): the attribute view re-reads its crop

    def __init__(self, service: AnnotationService, cache: ImageCache, attribute: str | None = None,
                 parent: QWidget | None = None, *, page_size: int = GRID_PAGE):
        super().__init__(parent, Qt.WindowType.Window)
        self.service = service
        self.cache = cache
        self.attribute = service.taxonomy.attribute(attribute or service.attribute)
        self.page: Grid | None = None
        self.page_size = int(page_size)
        self._after: tuple[float, int] | None = None  # key the page shown was read from
        self._next: tuple[float, int] | None = None  # key of the page after it (None: last page)
        self.total: int | None = None  # unlabelled crops predicted the value: counted when a value is picked
        self._keys: list[tuple[float, int] | None] = []  # keys of the pages before (for undo)
        self.setWindowTitle(f"Predictions to confirm · {self.attribute.name}")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.values = QComboBox()
        self.values.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.values.currentIndexChanged.connect(lambda _: self.load(reset=True))
        self.status = QLabel()
        self.accept_button = QPushButton("Accept ticked  [Enter]")
        self.next_button = QPushButton("Next page  [N]")
        self.undo_button = QPushButton("Undo  [Ctrl+Z]")
        for b, fn in ((self.accept_button, self.accept), (self.next_button, self.next_page), (self.undo_button, self.undo)):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.clicked.connect(fn)
        top = QHBoxLayout()
        top.addWidget(QLabel("Predicted value"))
        top.addWidget(self.values, 1)
        for b in (self.accept_button, self.next_button, self.undo_button):
            top.addWidget(b)

        box = QWidget()
        self.grid = QGridLayout(box)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.buttons: list[QToolButton] = []
        scroll = QScrollArea()
        scroll.setWidget(box)
        scroll.setWidgetResizable(True)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(QLabel("Every crop is ticked: click the wrong ones, then Enter accepts the rest."))
        layout.addWidget(scroll, 1)
        layout.addWidget(self.status)
        self.resize(8 * (THUMB.width() + 24) + 40, 720)

    # -- reading -------------------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read the predicted values (counts change as crops get labelled) and the first page."""
        current = self.values.currentData()
        self.values.blockSignals(True)
        self.values.clear()
        try:
            counts = self.service.predicted_values(self.attribute.name)
        except UserError as exc:
            counts = []
            self.status.setText(str(exc))
        for vc in counts:
            self.values.addItem(f"{vc.value}  ({vc.crops} crops, mean confidence {vc.mean_confidence:.0%})", vc.value)
        if current is not None and self.values.findData(current) >= 0:
            self.values.setCurrentIndex(self.values.findData(current))
        self.values.blockSignals(False)
        self.load(reset=True)

    def select_value(self, value: str) -> None:
        index = self.values.findData(value)
        if index < 0:
            raise UserError(f"no unlabelled crop is predicted {value!r} for {self.attribute.name}")
        self.values.setCurrentIndex(index)
        self.load(reset=True)

    def load(self, *, reset: bool = False, after: tuple[float, int] | None = None) -> None:
        value = self.values.currentData()
        if reset:
            self._keys, after = [], None
        self._after = after
        if value is None:
            self.page = None
            self._render()
            self.status.setText("no predictions for unlabelled crops of this attribute (see `portrait prelabel`)")
            return
        try:
            # Counting the whole grid costs a scan (over 100 ms on 250,000 crops): once per value picked,
            # then kept up to date here. Two pages are read (a page costs about a millisecond): the
            # second one's thumbnails are decoded in the background while the annotator looks at the first.
            read = self.service.grid(value, self.attribute.name, after=after, limit=2 * self.page_size,
                                     count=reset or self.total is None)  # fmt: skip
        except UserError as exc:
            self.status.setText(str(exc))
            return
        if read.total is not None:
            self.total = read.total
        shown, ahead = read.items[:self.page_size], read.items[self.page_size:]
        self._next = (shown[-1].confidence, shown[-1].crop_id) if ahead else None
        self.page = Grid(read.attribute, read.value, shown, self.total, self._next)
        self.cache.prefetch(it.image_path for it in ahead)
        self._render()

    def _render(self) -> None:
        items = self.page.items if self.page is not None else ()
        while len(self.buttons) < len(items):
            b = thumb_button(THUMB, checkable=True, style=STYLE)
            index = len(self.buttons)
            self.grid.addWidget(b, index // COLUMNS, index % COLUMNS)
            self.buttons.append(b)
        for i, b in enumerate(self.buttons):
            if i >= len(items):
                b.hide()
                continue
            it = items[i]
            b.setIcon(QIcon(self.cache.pixmap(it.image_path, THUMB)))
            b.setText(f"{it.confidence:.0%}")
            b.setToolTip(f"crop {it.crop_id} · track {it.track_id} · frame {it.frame_index}; click to untick")
            b.setChecked(True)
            b.show()
        if self.page is not None:
            self.status.setText(f"{len(items)} shown of {self.page.total} unlabelled crops predicted "
                                f"{self.page.value}" + ("" if self.page.next_after else " (last page)"))  # fmt: skip
        self.accept_button.setEnabled(bool(items))

    def ticked(self) -> list[int]:
        items = self.page.items if self.page is not None else ()
        return [it.crop_id for it, b in zip(items, self.buttons, strict=False) if b.isChecked()]

    # -- actions -------------------------------------------------------------------------------
    def accept(self) -> None:
        """Enter: the ticked crops get the predicted value (``accepted``); on to the next page."""
        ids = self.ticked()
        if self.page is None or not ids:
            self.status.setText("nothing ticked")
            return
        try:
            action = self.service.accept_grid(ids, self.page.value, self.attribute.name)
        except UserError as exc:
            self.status.setText(str(exc))
            return
        self._keys.append(self._after)
        if self.total is not None:
            self.total = max(self.total - len(action.crop_ids), 0)
        self.load(after=self.page.next_after) if self.page.next_after else self.load(reset=True)
        self.status.setText(f"accepted {len(action.crop_ids)} crop(s) \u00b7 " + self.status.text())
        self.accepted.emit()

    def next_page(self) -> None:
        """N: leave this page's crops to the queue and show the next page."""
        if self.page is not None and self.page.next_after is not None:
            self._keys.append(self._after)
            self.load(after=self.page.next_after)

    def undo(self) -> None:
        action = history_step(self.service.undo, self.status.setText, "nothing to undo")
        if action is None:
            return
        self.total = None  # recounted: the undo may have been of another view's labels
        self.load(after=self._keys.pop() if self._keys else None)  # the undone crops are on that page again
        self.status.setText(f"undone: {len(action.crop_ids)} crop(s) \u00b7 " + self.status.text())
        self.accepted.emit()

    def toggle_all(self) -> None:
        shown = [b for b in self.buttons if not b.isHidden()]
        state = not all(b.isChecked() for b in shown)
        for b in shown:
            b.setChecked(state)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, mods, text = event.key(), event.modifiers(), event.text().lower()
        if mods & Qt.KeyboardModifier.ControlModifier and key == Qt.Key.Key_Z:
            self.undo()
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.accept()
        elif key == Qt.Key.Key_Escape:
            self.close()
        elif text == "n":
            self.next_page()
        elif text == "a":
            self.toggle_all()
        else:
            super().keyPressEvent(event)
