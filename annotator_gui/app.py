"""The annotation window: the view for the annotator's attribute, undo/redo, a status bar with progress."""

from __future__ import annotations

import signal
import sys
from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QMessageBox

from annotator_gui.character_view import CharacterView
from annotator_gui.images import ImageCache
from annotator_gui.views import AttributeView, IdentityView, LabelView
from portrait_builder.annotation import AnnotationService, Progress
from portrait_builder.annotation.character_attributes import character_attributes

PROGRESS_MS = 3000

KEYS_HELP = """<b>Keys</b><br>
Identity: Enter (or Space) confirm the proposal for the crop, its strip and the ticked tracks of its
cluster (click a track to leave it out) · 1-9 pick the exemplar · N new identity · U unknown person · 0 not visible ·
T whole track on/off · M / F / 0 answer the gender question · Esc cancel<br>
Age, physique, height: the key shown on each button sets the character's value (the track's without
a character) · C this crop only<br>
Posture, expression: the key shown on each button labels the crop and the rest of its track up to the
next change point (expression: toggle keys, then Enter) · S change point at the crop shown (again: remove) ·
, / . previous / next crop of the track (or click it in the strip) · T this crop only on/off ·
Enter (or Space) accept the prediction shown · F crops without a visible face to not visible (expression) ·
G grid of predictions: click the wrong crops, Enter accepts the rest, N next page, A all, Esc close<br>
Everywhere: Left back · Right skip · Ctrl+Z undo · Ctrl+Shift+Z (or Ctrl+Y) redo"""


class _ProgressSignal(QObject):
    ready = Signal(object)


class AnnotationWindow(QMainWindow):
    def __init__(self, service: AnnotationService, cache: ImageCache | None = None, *, start: bool = True):
        super().__init__()
        self.service = service
        self.cache = cache or ImageCache()
        attr = service.taxonomy.attribute(service.attribute)
        self.view: LabelView
        if attr.kind == "identity":
            self.view = IdentityView(service, self.cache)
        elif attr.name in character_attributes(service.taxonomy):  # static: once per character
            self.view = CharacterView(service, self.cache, attr.name)
        else:
            self.view = AttributeView(service, self.cache, attr.name)
        self.setCentralWidget(self.view)
        self.setWindowTitle(f"Portrait Builder · {attr.name} · {service.annotator.name} ({service.annotator.role})")

        edit = self.menuBar().addMenu("&Edit")
        self.undo_action = QAction("Undo", self, shortcut=QKeySequence("Ctrl+Z"))
        self.redo_action = QAction("Redo", self, shortcut=QKeySequence("Ctrl+Shift+Z"))
        self.undo_action.triggered.connect(self.view.undo)
        self.redo_action.triggered.connect(self.view.redo)
        edit.addAction(self.undo_action)
        edit.addAction(self.redo_action)
        help_menu = self.menuBar().addMenu("&Help")
        keys = QAction("Keys", self, shortcut=QKeySequence("F1"))
        keys.triggered.connect(lambda: QMessageBox.information(self, "Keys", KEYS_HELP))
        help_menu.addAction(keys)

        self.progress_label = QLabel()
        self.statusBar().addPermanentWidget(self.progress_label)
        self.view.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.view.labelled.connect(self._labelled)

        # Counting done/remaining touches an index over the whole queue: off the UI thread.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="progress")
        self._progress_signal = _ProgressSignal()
        self._progress_signal.ready.connect(self.show_progress)
        self._progress_pending = False
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh_progress)
        self._timer.start(PROGRESS_MS)
        self.resize(1100, 720)
        if start:
            self.view.start()
            self.refresh_progress()
        self.view.setFocus()

    def _labelled(self) -> None:
        self.undo_action.setEnabled(True)

    def refresh_progress(self) -> None:
        if self._progress_pending:
            return
        self._progress_pending = True

        def work():
            try:
                self._progress_signal.ready.emit(self.service.progress())
            except Exception as exc:  # a transient store error must not kill the timer thread
                self._progress_signal.ready.emit(exc)

        self._pool.submit(work)

    def show_progress(self, p: Progress | Exception) -> None:
        self._progress_pending = False
        if isinstance(p, Exception):
            self.progress_label.setText(f"progress unavailable: {p}")
            return
        self.progress_label.setText(
            f"{p.attribute}: {p.done:,} done · {p.remaining:,} remaining · {p.labels_per_hour:.0f} labels/h"
        )

    def closeEvent(self, event) -> None:
        self._timer.stop()
        self._pool.shutdown(wait=True)
        self.service.release()  # unlabelled leased crops go back to the queue at once
        self.cache.shutdown()
        super().closeEvent(event)


def run_app(service: AnnotationService, *, review: bool = False) -> int:
    """Open the annotation (or review) window and run the Qt event loop; returns its exit code."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    if review:
        from annotator_gui.review import ReviewWindow

        window = ReviewWindow(service)
    else:
        window = AnnotationWindow(service)
    window.show()
    # Ctrl+C / SIGTERM close the window properly (leases returned); the timer lets Python see signals.
    close = window.close
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: close())
    ticker = QTimer()
    ticker.timeout.connect(lambda: None)
    ticker.start(250)
    code = int(app.exec())
    ticker.stop()
    # Tear the window down while Qt is still alive, not during interpreter shutdown.
    window.close()
    window.deleteLater()
    app.processEvents()
    del window
    return code
