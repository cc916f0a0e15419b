"""Review mode: filter current labels by attribute, value, annotator and provenance (clicked, accepted
prediction, propagated along a track, ...), see a crop's label history, correct one, see agreement
(kappa, optionally over clicked labels only)."""

from __future__ import annotations

import math

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from annotator_gui.images import ImageCache
from annotator_gui.views import CropImage
from portrait_builder.annotation import AnnotationService, ReviewRow, list_annotators
from portrait_builder.annotation.review import PROVENANCES
from portrait_builder.errors import UserError

THUMB = QSize(32, 64)
PAGE = 200
ANY = "(any)"


class ReviewWindow(QMainWindow):
    def __init__(self, service: AnnotationService, cache: ImageCache | None = None):
        super().__init__()
        self.service = service
        self.cache = cache or ImageCache()
        self.rows: list[ReviewRow] = []
        self.setWindowTitle(f"Portrait Builder review · {service.annotator.name} ({service.annotator.role})")

        self.attribute = QComboBox()
        self.attribute.addItems(list(service.taxonomy.names))
        self.attribute.setCurrentText(service.attribute)
        self.value = QComboBox()
        self.annotator = QComboBox()
        self.annotator.addItems([ANY] + [a.name for a in list_annotators(service.project)])
        self.provenance = QComboBox()
        self.provenance.addItems([ANY, *PROVENANCES])
        self.search = QPushButton("Show")
        self.more = QPushButton("More")
        filters = QHBoxLayout()
        for label, w in (("Attribute", self.attribute), ("Value", self.value), ("Annotator", self.annotator),
                         ("Provenance", self.provenance)):
            filters.addWidget(QLabel(label))
            filters.addWidget(w)
        filters.addWidget(self.search)
        filters.addWidget(self.more)
        filters.addStretch(1)

        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["crop", "value", "annotator", "provenance", "label id"])
        self.table.setIconSize(THUMB)
        self.table.verticalHeader().setDefaultSectionSize(THUMB.height() + 4)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setColumnWidth(0, 110)
        self.table.setColumnWidth(1, 180)

        self.image = CropImage()
        self.current = QLabel("select a row")
        self.current.setWordWrap(True)
        self.correct_box = QWidget()
        self.correct_layout = QGridLayout(self.correct_box)
        self.correct_layout.setContentsMargins(0, 0, 0, 0)
        self.correct_buttons: list[QPushButton] = []
        self.kappa_label = QLabel()
        self.kappa_label.setWordWrap(True)
        self.kappa_label.setTextFormat(Qt.TextFormat.RichText)
        # propagated, accepted and inherited labels repeat one decision over many crops: agreement over
        # them says little about how two people see one crop
        self.clicked_only = QCheckBox("clicked labels only")
        self.clicked_only.toggled.connect(lambda _: self.update_kappa())
        self.history = QTableWidget(0, 4)
        self.history.setHorizontalHeaderLabels(["value", "annotator", "provenance", "source"])
        self.history.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.history.setMaximumHeight(140)

        right = QVBoxLayout()
        right.addWidget(self.image)
        right.addWidget(self.current)
        right.addWidget(QLabel("<b>Correct to</b>"))
        right.addWidget(self.correct_box)
        right.addWidget(QLabel("<b>History</b> (oldest first)"))
        right.addWidget(self.history)
        right.addStretch(1)
        right.addWidget(QLabel("<b>Agreement (Cohen's kappa)</b>"))
        right.addWidget(self.clicked_only)
        right.addWidget(self.kappa_label)

        right_box = QWidget()
        right_box.setLayout(right)
        right_box.setFixedWidth(300)
        body = QHBoxLayout()
        body.addWidget(self.table, 1)
        body.addWidget(right_box)
        central = QWidget()
        outer = QVBoxLayout(central)
        outer.addLayout(filters)
        outer.addLayout(body, 1)
        self.setCentralWidget(central)
        self.resize(980, 720)

        self.attribute.currentTextChanged.connect(self._attribute_changed)
        self.search.clicked.connect(lambda: self.load(reset=True))
        self.more.clicked.connect(lambda: self.load(reset=False))
        self.table.currentCellChanged.connect(lambda row, *_: self.select(row))
        self._attribute_changed(self.attribute.currentText())

    # -- filters and results -------------------------------------------------------------------
    def _attribute_changed(self, name: str) -> None:
        attr = self.service.taxonomy.attribute(name)
        self.value.clear()
        self.value.addItems([ANY, *attr.value_names])
        self.load(reset=True)
        self.update_kappa()

    def set_filters(self, attribute: str | None = None, value: str | None = None, annotator: str | None = None,
                    provenance: str | None = None) -> None:
        if attribute is not None:
            self.attribute.setCurrentText(attribute)
        self.value.setCurrentText(value or ANY)
        self.annotator.setCurrentText(annotator or ANY)
        self.provenance.setCurrentText(provenance or ANY)
        self.load(reset=True)

    def load(self, reset: bool = True) -> None:
        value = self.value.currentText()
        who = self.annotator.currentText()
        how = self.provenance.currentText()
        offset = 0 if reset else len(self.rows)
        try:
            rows = self.service.review_labels(
                self.attribute.currentText(),
                value=None if value in ("", ANY) else value,
                annotator=None if who in ("", ANY) else who,
                provenance=None if how in ("", ANY) else how,
                limit=PAGE,
                offset=offset,
            )
        except UserError as exc:
            self.statusBar().showMessage(str(exc))
            return
        if reset:
            self.rows = []
            self.table.setRowCount(0)
        self.cache.prefetch(r.image_path for r in rows)
        start = len(self.rows)
        self.rows += rows
        self.table.setRowCount(len(self.rows))
        for i, r in enumerate(rows, start):
            self._fill_row(i, r)
        self.statusBar().showMessage(f"{len(self.rows)} label(s) shown")

    def _fill_row(self, i: int, r: ReviewRow) -> None:
        crop = QTableWidgetItem(QIcon(self.cache.pixmap(r.image_path, THUMB)), str(r.crop_id))
        value = "|".join(r.value) if isinstance(r.value, list) else str(r.value)
        cells = (crop, QTableWidgetItem(value), QTableWidgetItem(r.annotator or "-"),
                 QTableWidgetItem(r.provenance or "clicked"), QTableWidgetItem(str(r.label_id)))
        for col, item in enumerate(cells):
            self.table.setItem(i, col, item)

    def select(self, row: int) -> None:
        if not 0 <= row < len(self.rows):
            return
        r = self.rows[row]
        self.image.show_crop(self.cache, r.image_path)
        self.current.setText(f"crop {r.crop_id} · {r.attribute} = {r.value} · by {r.annotator or '-'} "
                             f"({r.provenance or 'clicked'})")
        self._render_corrections(r)
        self._render_history(r)

    def _render_history(self, r: ReviewRow) -> None:
        try:
            rows = self.service.label_history(r.crop_id, r.attribute)
        except UserError as exc:
            self.statusBar().showMessage(str(exc))
            return
        self.history.setRowCount(len(rows))
        for i, h in enumerate(rows):
            value = "|".join(h.value) if isinstance(h.value, list) else str(h.value)
            for col, text in enumerate((value, h.annotator or "-", h.provenance or "clicked", h.source)):
                self.history.setItem(i, col, QTableWidgetItem(text))

    def _render_corrections(self, r: ReviewRow) -> None:
        for b in self.correct_buttons:
            b.deleteLater()
        self.correct_buttons = []
        attr = self.service.taxonomy.attribute(r.attribute)
        choices: list[tuple[str, object]] = []
        if attr.kind == "identity":
            for ex in self.service.exemplars(r.crop_id, limit=9):
                choices.append((f"{ex.name or 'ID ' + str(ex.identity_id)} ({ex.gender or '?'})", ex.identity_id))
        choices += [(v.label, v.name) for v in attr.values]
        for text, value in choices:
            b = QPushButton(text)
            if attr.multilabel and value != attr.unsure_value:
                b.setToolTip("sets exactly this one expression")
            b.clicked.connect(lambda _=False, crop=r.crop_id, v=value: self.correct(crop, v))
            index = len(self.correct_buttons)
            self.correct_layout.addWidget(b, index // 2, index % 2)
            b.show()
            self.correct_buttons.append(b)

    def correct(self, crop_id: int, value) -> None:
        attribute = self.attribute.currentText()
        try:
            self.service.correct_label(crop_id, attribute, value)
        except UserError as exc:
            self.statusBar().showMessage(str(exc))
            return
        row = self.table.currentRow()
        self.statusBar().showMessage(f"corrected crop {crop_id}: {attribute} = {value}")
        self.load(reset=True)
        if 0 <= row < self.table.rowCount():
            self.table.setCurrentCell(row, 0)
        self.update_kappa()

    def update_kappa(self) -> None:
        try:
            results = self.service.agreement(self.attribute.currentText(), clicked_only=self.clicked_only.isChecked())
        except UserError as exc:
            self.kappa_label.setText(str(exc))
            return
        if not results:
            self.kappa_label.setText("no two annotators labelled the same crops of this attribute yet")
            return
        lines = [
            f"{k.annotator_a} vs {k.annotator_b}: κ = {'n/a' if math.isnan(k.kappa) else f'{k.kappa:.3f}'} (n = {k.n})"
            for k in results
        ]
        self.kappa_label.setText("<br>".join(lines))

    def closeEvent(self, event) -> None:
        self.cache.shutdown()
        super().closeEvent(event)
