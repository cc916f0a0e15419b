"""The labelling views: identity by exemplar (the paper's Fig. 8) and one view per taxonomy attribute.

Thin widgets: every decision and every write goes through
:class:`portrait_builder.annotation.AnnotationService`; these classes only lay out, map keys and
keep the "which crop is on screen" history for the arrow keys.
"""

from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QKeyEvent, QPainter, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
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
from annotator_gui.widgets import history_step, scroll_row, thumb_button
from portrait_builder.annotation import AnnotationService, CropItem, Exemplar, TrackCrop
from portrait_builder.annotation.proposals import Proposal
from portrait_builder.annotation.tracks import TrackContext
from portrait_builder.errors import UserError

LARGE = QSize(192, 384)
EXEMPLAR = QSize(64, 128)
STRIP = QSize(40, 80)
MAX_EXEMPLARS = 48
STRIP_CROPS = 16
CLUSTER_TRACKS = 24  # other tracks of the candidate cluster shown as toggles (and labelled by Enter)
DIMMED_CACHE = 256  # dimmed strip images kept: the strip shifts by one crop per click, so most repeat
PREFETCH = 12
ATTRIBUTE_STRIP = 24  # crops of the track the attribute view's strip shows (spread over the whole track)
PREDICTED_STYLE = "border:2px dashed #39f;"  # the value a baseline predicted for an unlabelled crop
LABELLED_OPACITY = 0.35  # strip crops that already have a label: dimmed, with a check mark
STRIP_STYLE = (
    "QToolButton:checked{border:2px solid #2a8;} QToolButton:!checked{border:2px solid #c33;}"
    ' QToolButton[labelled="true"]:!checked{border:2px dashed #888;}'
)


def _button(text: str, *, checkable: bool = False) -> QPushButton:
    b = QPushButton(text)
    b.setCheckable(checkable)
    if checkable:
        b.setStyleSheet("QPushButton:checked { background: #2a8a5a; color: white; font-weight: bold; }")
    b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys go to the view, never to a focused button
    b.setMinimumHeight(32)
    return b


class CropImage(QLabel):
    """The large current crop."""

    def __init__(self, size: QSize = LARGE):
        super().__init__()
        self.setFixedSize(size)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setStyleSheet("background:#202020; color:#ddd; border:1px solid #444;")
        self.path: str | None = None

    def show_crop(self, cache: ImageCache, path) -> None:
        self.path = str(path) if path is not None else None
        if path is None:
            self.clear()
            self.setText("queue empty")
        else:
            self.setPixmap(cache.pixmap(path, self.size()))


def _init_properties(widget: QWidget, **values) -> None:
    """Give dynamic properties a value at creation.

    PySide6 6.12 on Python 3.11 returns an *unset* property as ``None`` without taking a reference:
    every such ``property()`` call leaks one reference to None, and after a few thousand the
    interpreter aborts ("deallocating None"). Reading only properties that were set avoids it.
    """
    for name, value in values.items():
        widget.setProperty(name, value)


def _labelled_pixmap(pixmap: QPixmap) -> QPixmap:
    """A strip crop that already has a label: the image dimmed, a check mark in its corner."""
    out = QPixmap(pixmap.size())
    out.fill(QColor(32, 32, 32))
    painter = QPainter(out)
    painter.setOpacity(LABELLED_OPACITY)
    painter.drawPixmap(0, 0, pixmap)
    painter.setOpacity(1.0)
    font = QFont()
    font.setBold(True)
    font.setPixelSize(max(10, pixmap.width() // 3))
    painter.setFont(font)
    painter.setPen(QColor(80, 220, 140))
    painter.drawText(out.rect().adjusted(2, 1, -2, -1), Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignRight, "\u2713")
    painter.end()
    return out


class LabelView(QWidget):
    """Shared navigation: next from the leased queue, Left = back, Right = skip, undo/redo."""

    itemShown = Signal(int)  # crop id (0: queue empty) once its image is on screen
    message = Signal(str)
    labelled = Signal()

    def __init__(self, service: AnnotationService, cache: ImageCache, parent: QWidget | None = None):
        super().__init__(parent)
        self.service = service
        self.cache = cache
        self.item: CropItem | None = None
        self._back: list[int] = []
        self._forward: list[int] = []
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    # -- navigation ----------------------------------------------------------------------------
    def start(self) -> None:
        self.advance()

    def advance(self) -> None:
        try:
            item = self.service.get_item(self._forward.pop()) if self._forward else self.service.next_item()
        except UserError as exc:  # e.g. the database refused a disabled login: say so, keep the crop shown
            self.message.emit(str(exc))
            return
        self.show_item(item)

    def after_label(self) -> None:
        if self.item is not None:
            self._back.append(self.item.id)
        self.labelled.emit()
        self.advance()

    def go_back(self) -> None:
        if not self._back:
            self.message.emit("no earlier crop in this session")
            return
        if self.item is not None:
            self._forward.append(self.item.id)
        self.show_item(self.service.get_item(self._back.pop()))

    def skip(self) -> None:
        if self._forward:
            self.advance()
            return
        if self.item is not None:
            self.service.skip(self.item.id)
        self.advance()

    def undo(self) -> None:
        action = history_step(self.service.undo, self.message.emit, "nothing to undo")
        if action is None:
            return
        if not action.crop_ids:
            self.message.emit("undo: the labels were changed by someone else since; left alone")
            return
        if self.item is not None and self.item.id not in action.crop_ids:
            self._forward.append(self.item.id)
        if self._back and self._back[-1] == action.crop_ids[0]:
            self._back.pop()
        self.message.emit(f"undone: {len(action.labels)} label(s) on {len(action.crop_ids)} crop(s)")
        self.labelled.emit()
        self.show_item(self.service.get_item(action.crop_ids[0]))

    def redo(self) -> None:
        action = history_step(self.service.redo, self.message.emit, "nothing to redo")
        if action is None:
            return
        self.message.emit(f"redone: {len(action.labels)} label(s)")
        self.labelled.emit()
        if self.item is not None and self.item.id in action.crop_ids:
            self.after_label()

    def show_item(self, item: CropItem | None) -> None:
        self.item = item
        self.render_item(item)
        self.cache.prefetch(self.service.upcoming(PREFETCH))
        self.itemShown.emit(item.id if item is not None else 0)

    def render_item(self, item: CropItem | None) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def run(self, fn, *args, **kwargs):
        """Call the service; a refused or invalid write becomes a status message, not a crash."""
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            self.message.emit(str(exc))
            return None

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, mods = event.key(), event.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        if ctrl and key == Qt.Key.Key_Z:
            self.redo() if mods & Qt.KeyboardModifier.ShiftModifier else self.undo()
        elif ctrl and key == Qt.Key.Key_Y:
            self.redo()
        elif key == Qt.Key.Key_Left:
            self.go_back()
        elif key == Qt.Key.Key_Right:
            self.skip()
        elif not self.handle_key(event):
            super().keyPressEvent(event)

    def handle_key(self, event: QKeyEvent) -> bool:
        return False


class IdentityView(LabelView):
    """The proposal (most likely character and the other tracks of the crop's candidate cluster, Enter
    confirms them all), the exemplar grid (nearest face first), the current crop large, its track
    strip, new/unknown person."""

    def __init__(self, service: AnnotationService, cache: ImageCache, parent: QWidget | None = None):
        super().__init__(service, cache, parent)
        tax = service.taxonomy
        self.gender_values = tax.attribute("gender").values
        self.exemplars: list[Exemplar] = []
        self.strip: list[TrackCrop] = []
        self.proposal: Proposal | None = None
        self._prompt: str | None = None  # "new" | "unknown" while asking for a gender

        self.image = CropImage()
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setFixedSize(LARGE.width(), 48)
        self.whole_track = QCheckBox("Label whole track (T)")
        self.whole_track.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.whole_track.setChecked(True)
        self.strip_buttons: list[QToolButton] = []
        self._dimmed: OrderedDict[str, QPixmap] = OrderedDict()
        self.strip_layout, strip_scroll = scroll_row(STRIP.height() + 30)

        left = QVBoxLayout()
        left.addWidget(QLabel("<b>Current crop</b>"))
        left.addWidget(self.image, 0, Qt.AlignmentFlag.AlignHCenter)
        left.addWidget(self.info)
        left.addWidget(self.whole_track)
        self.strip_hint = QLabel("Track (click to leave a crop out; dimmed \u2713 = already labelled, click to relabel):")
        self.strip_hint.setWordWrap(True)
        left.addWidget(self.strip_hint)
        left.addWidget(strip_scroll)

        self.grid_box = QWidget()
        self.grid = QGridLayout(self.grid_box)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.exemplar_buttons: list[QToolButton] = []
        grid_scroll = QScrollArea()
        grid_scroll.setWidget(self.grid_box)
        grid_scroll.setWidgetResizable(True)
        grid_scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        self.new_button = _button("New identity  [N]")
        self.unknown_button = _button("Unknown person  [U]")
        self.unsure_button = _button("Not visible / unsure  [0]")
        self.new_button.clicked.connect(lambda: self.ask_gender("new"))
        self.unknown_button.clicked.connect(lambda: self.ask_gender("unknown"))
        self.unsure_button.clicked.connect(self.not_visible)
        actions = QHBoxLayout()
        for b in (self.new_button, self.unknown_button, self.unsure_button):
            actions.addWidget(b)

        # The gender question of "New identity" / "Unknown person": inline buttons, keys M / F / 0.
        self.prompt = QWidget()
        prompt_row = QHBoxLayout(self.prompt)
        self.prompt_label = QLabel()
        prompt_row.addWidget(self.prompt_label)
        self.gender_buttons: dict[str, QPushButton] = {}
        for v in self.gender_values:
            b = _button(f"{v.label}  [{v.hotkey.upper()}]")
            b.clicked.connect(lambda _=False, name=v.name: self.choose_gender(name))
            prompt_row.addWidget(b)
            self.gender_buttons[v.name] = b
        cancel = _button("Cancel  [Esc]")
        cancel.clicked.connect(self.cancel_prompt)
        prompt_row.addWidget(cancel)
        self.prompt.hide()

        # The proposal: the likely character, the cluster's other tracks (click one to leave it out),
        # Enter / Space confirms the crop, its strip and every ticked track at once.
        self.proposal_image = QLabel()
        self.proposal_image.setFixedSize(EXEMPLAR)
        self.proposal_text = QLabel()
        self.proposal_text.setWordWrap(True)
        self.confirm_button = _button("Confirm all  [Enter]")
        self.confirm_button.clicked.connect(self.confirm_proposal)
        self.cluster_buttons: list[QToolButton] = []
        self.cluster_layout, cluster_scroll = scroll_row(STRIP.height() + 48)
        proposal_row = QHBoxLayout()
        proposal_row.addWidget(self.proposal_image)
        proposal_text = QVBoxLayout()
        proposal_text.addWidget(self.proposal_text)
        proposal_text.addWidget(self.confirm_button)
        proposal_row.addLayout(proposal_text, 1)

        right = QVBoxLayout()
        right.addWidget(QLabel("<b>Proposal</b> (Enter confirms; click a track below to leave it out)"))
        right.addLayout(proposal_row)
        right.addWidget(cluster_scroll)
        right.addWidget(QLabel("<b>Characters of this movie</b> (most similar first; keys 1-9)"))
        right.addWidget(grid_scroll, 1)
        right.addLayout(actions)
        right.addWidget(self.prompt)

        layout = QHBoxLayout(self)
        layout.addLayout(left, 0)
        layout.addLayout(right, 1)

    # -- rendering -----------------------------------------------------------------------------
    def render_item(self, item: CropItem | None) -> None:
        self.cancel_prompt()
        self.image.show_crop(self.cache, item.image_path if item else None)
        for b in (self.new_button, self.unknown_button, self.unsure_button):
            b.setEnabled(item is not None)
        if item is None:
            self.info.setText("Nothing left in this queue.")
            self.exemplars, self.strip, self.proposal = [], [], None
        else:
            current = item.labels.get(self.service.identity_attribute)
            self.info.setText(
                f"crop {item.id} · video {item.video_id} · track {item.track_id} · frame {item.frame_index}"
                + (f"<br>labelled: identity {current}, gender {item.labels.get('gender', '-')}" if current else "")
            )
            ctx = self.service.identity_view_context(item.id, exemplars=MAX_EXEMPLARS, strip=STRIP_CROPS)
            self.exemplars, self.strip, self.proposal = ctx.exemplars, ctx.strip, ctx.proposal
        self._render_exemplars()
        self._render_strip()
        self._render_proposal()

    def _render_proposal(self) -> None:
        p = self.proposal
        self.confirm_button.setEnabled(p is not None)
        if p is None:
            self.proposal_image.clear()
            self.proposal_text.setText("")
        elif p.identity_id is None:
            self.proposal_image.clear()
            self.proposal_image.setText("new")
            more = f" and {len(p.tracks)} more track(s) of its cluster" if p.tracks else ""
            self.proposal_text.setText(f"<b>New character</b> from this track{more}: Enter, then its gender")
        else:
            self.proposal_image.setPixmap(self.cache.pixmap(p.image_path, EXEMPLAR) if p.image_path else QPixmap())
            why = "confirmed for this cluster" if p.kind == "confirmed" else f"nearest face (distance {p.distance:.2f})"
            more = f" + {len(p.tracks)} track(s), {p.crops_to_label} crops" if p.tracks else ""
            self.proposal_text.setText(f"<b>{p.name or f'ID {p.identity_id}'}</b> ({p.gender or '?'}) · {why}{more}")
        tracks = p.tracks[:CLUSTER_TRACKS] if p is not None else ()
        while len(self.cluster_buttons) < len(tracks):
            b = thumb_button(STRIP, checkable=True, style=STRIP_STYLE)
            _init_properties(b, image="")
            self.cluster_layout.insertWidget(len(self.cluster_buttons), b)
            self.cluster_buttons.append(b)
        for i, b in enumerate(self.cluster_buttons):
            if i >= len(tracks):
                b.hide()
                continue
            tr = tracks[i]
            if b.property("image") != str(tr.image_path):
                b.setIcon(QIcon(self.cache.pixmap(tr.image_path, STRIP)))
                b.setProperty("image", str(tr.image_path))
            b.setText(f"{tr.unlabelled} crops")
            b.setToolTip(f"track {tr.track_id}: {tr.unlabelled} of {tr.crops} crops to label; click to leave it out")
            b.setChecked(True)
            if b.isHidden():
                b.show()

    def cluster_tracks(self) -> list[int]:
        """The cluster's other tracks still ticked (what a confirm labels along with the crop)."""
        if self.proposal is None:
            return []
        shown = self.proposal.tracks[:CLUSTER_TRACKS]
        return [tr.track_id for tr, b in zip(shown, self.cluster_buttons, strict=False) if b.isChecked()]

    def confirm_proposal(self) -> None:
        """Enter: the proposed character on the crop, its strip and the ticked tracks (new: ask the gender first)."""
        if self.item is None or self.proposal is None:
            return
        if self.proposal.identity_id is None:
            self.ask_gender("new")
            return
        self._confirm(self.proposal.identity_id)

    def _confirm(self, identity_id: int | None, gender: str | None = None) -> None:
        # whole-track mode: the track's unlabelled crops beyond the strip go too (as the cluster's other
        # tracks do), but never a strip crop the annotator left out
        targets, whole = self.targets(), self.whole_track.isChecked()
        left_out = [tc.id for tc, b in zip(self.strip, self.strip_buttons, strict=False) if not b.isChecked()]
        done = self.run(self.service.confirm_proposal, targets[0], identity_id, gender=gender, crops=targets[1:],
                        tracks=self.cluster_tracks(), whole_track=whole, exclude=left_out)  # fmt: skip
        if done is not None:
            self.message.emit(f"confirmed: {len(done.crop_ids)} crop(s)")
            self.after_label()

    def _in_cluster(self) -> bool:
        return self.proposal is not None and self.proposal.candidate_id is not None

    def _render_exemplars(self) -> None:
        cols = 5
        while len(self.exemplar_buttons) < len(self.exemplars):
            b = thumb_button(EXEMPLAR)
            b.setFixedSize(EXEMPLAR.width() + 64, EXEMPLAR.height() + 44)  # fixed: new text never relayouts the grid
            _init_properties(b, image="")
            index = len(self.exemplar_buttons)
            b.clicked.connect(lambda _=False, i=index: self.pick_exemplar(i))
            self.grid.addWidget(b, index // cols, index % cols)
            self.exemplar_buttons.append(b)
        for i, b in enumerate(self.exemplar_buttons):
            if i >= len(self.exemplars):
                b.hide()
                continue
            ex = self.exemplars[i]
            key = f"[{i + 1}] " if i < 9 else ""
            name = ex.name or f"ID {ex.identity_id}"
            # Re-set only what changed: consecutive crops of one movie mostly share the grid.
            if b.property("image") != str(ex.image_path):
                b.setIcon(QIcon(self.cache.pixmap(ex.image_path, EXEMPLAR)))
                b.setProperty("image", str(ex.image_path))
            text = f"{key}{name}\n{ex.gender or '?'} · {ex.crop_count} crops"
            if b.text() != text:
                b.setText(text)
            b.setToolTip(f"identity {ex.identity_id}" + (f", similarity {ex.similarity:.2f}" if ex.similarity is not None else ""))
            if b.isHidden():
                b.show()

    def _render_strip(self) -> None:
        while len(self.strip_buttons) < len(self.strip):
            b = thumb_button(STRIP, checkable=True, text_under_icon=False, style=STRIP_STYLE)
            _init_properties(b, image="", labelled=False)
            self.strip_layout.insertWidget(len(self.strip_buttons), b)
            self.strip_buttons.append(b)
        for i, b in enumerate(self.strip_buttons):
            if i >= len(self.strip):
                b.hide()
                continue
            tc = self.strip[i]
            key = f"{tc.image_path}|{tc.labelled}"
            if b.property("image") != key:
                b.setIcon(QIcon(self._dimmed_pixmap(tc.image_path) if tc.labelled else self.cache.pixmap(tc.image_path, STRIP)))
                b.setProperty("image", key)
            if b.property("labelled") != tc.labelled:
                b.setProperty("labelled", tc.labelled)
                b.style().unpolish(b)  # the dashed border of labelled crops is a property selector
                b.style().polish(b)
            # Labelled crops are shown for context but only written when ticked on purpose (a correction).
            b.setChecked(not tc.labelled)
            if tc.labelled:
                b.setToolTip(
                    f"crop {tc.id}, frame {tc.frame_index} \u00b7 labelled: {tc.label or 'yes'}\n"
                    "left out of whole-track labelling; click to relabel it with the next click"
                )
            else:
                b.setToolTip(f"crop {tc.id}, frame {tc.frame_index}: click to leave it out")
            if b.isHidden():
                b.show()
        self.cache.prefetch(tc.image_path for tc in self.strip)

    def _dimmed_pixmap(self, path) -> QPixmap:
        key = str(path)
        pixmap = self._dimmed.get(key)
        if pixmap is None:
            pixmap = self._dimmed[key] = _labelled_pixmap(self.cache.pixmap(path, STRIP))
            while len(self._dimmed) > DIMMED_CACHE:
                self._dimmed.popitem(last=False)
        self._dimmed.move_to_end(key)
        return pixmap

    # -- actions -------------------------------------------------------------------------------
    def targets(self) -> list[int]:
        """The current crop plus, in whole-track mode, the strip crops still ticked."""
        if self.item is None:
            return []
        ids = [self.item.id]
        if self.whole_track.isChecked():
            ids += [tc.id for tc, b in zip(self.strip, self.strip_buttons, strict=False) if b.isChecked()]
        return ids

    def pick_exemplar(self, index: int) -> None:
        if self.item is None or index >= len(self.exemplars):
            return
        ex = self.exemplars[index]
        if self._in_cluster():  # the cluster's ticked tracks go with the picked character
            self._confirm(ex.identity_id)
        elif self.run(self.service.assign_identity, self.targets(), ex.identity_id) is not None:
            self.after_label()

    def ask_gender(self, mode: str) -> None:
        if self.item is None:
            return
        self._prompt = mode
        self.prompt_label.setText("Gender of the new identity:" if mode == "new" else "Gender of the unknown person:")
        self.prompt.show()
        self.message.emit("pick the gender: " + ", ".join(f"{v.hotkey.upper()} {v.label}" for v in self.gender_values))

    def cancel_prompt(self) -> None:
        self._prompt = None
        self.prompt.hide()

    def choose_gender(self, gender: str) -> None:
        mode, targets = self._prompt, self.targets()
        self.cancel_prompt()
        if mode is None or not targets:
            return
        if mode == "new" and self._in_cluster():
            self._confirm(None, gender)
            return
        if mode == "new":
            done = self.run(self.service.new_identity, targets[0], gender, also=targets[1:])
        else:
            done = self.run(self.service.unknown_person, targets, gender)
        if done is not None:
            self.after_label()

    def not_visible(self) -> None:
        attr = self.service.identity_attribute
        unsure = self.service.taxonomy.attribute(attr).unsure_value
        if self.item is not None and self.run(self.service.set_label, self.targets(), attr, unsure) is not None:
            self.after_label()

    def handle_key(self, event: QKeyEvent) -> bool:
        text = event.text().lower()
        if self._prompt is not None:
            if event.key() == Qt.Key.Key_Escape:
                self.cancel_prompt()
                return True
            for v in self.gender_values:
                if text == v.hotkey.lower():
                    self.choose_gender(v.name)
                    return True
            return True  # while asking, other keys do nothing
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.confirm_proposal()
        elif text.isdigit() and text != "0":
            self.pick_exemplar(int(text) - 1)
        elif text == "0":
            self.not_visible()
        elif text == "n":
            self.ask_gender("new")
        elif text == "u":
            self.ask_gender("unknown")
        elif text == "t":
            self.whole_track.toggle()
        else:
            return False
        return True


class AttributeView(LabelView):
    """One large crop and one button per taxonomy value with its hotkey, over the crop's track.

    A value key labels the crop and the rest of its track up to the next change point (S marks one at
    the crop shown); the strip shows the whole track with its values and change points (click a crop,
    or , and . to step through the track). The crop's prediction, when it has one and no label, is
    shown selected: Enter (or Space) accepts it; G opens the grid of crops sharing a predicted value.
    Multi-label: toggle, then Enter (the prediction's values come pre-toggled). F sends the track's
    crops without a visible face to "not visible / unsure".
    """

    def __init__(self, service: AnnotationService, cache: ImageCache, attribute: str, parent: QWidget | None = None):
        super().__init__(service, cache, parent)
        self.attribute = service.taxonomy.attribute(attribute)
        self.context: TrackContext | None = None
        self.grid_window = None
        self.image = CropImage()
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setFixedWidth(LARGE.width() + 120)
        self.prediction_label = QLabel()
        self.prediction_label.setWordWrap(True)
        self.value_buttons: dict[str, QPushButton] = {}
        buttons = QVBoxLayout()
        title = self.attribute.name.replace("_", " ").capitalize()
        hint = " (several may apply: toggle, then Enter)" if self.attribute.multilabel else ""
        buttons.addWidget(QLabel(f"<b>{title}</b>{hint}"))
        for v in self.attribute.values:
            b = _button(f"{v.label}   [{v.hotkey.upper()}]", checkable=self.attribute.multilabel and not v.unsure)
            b.clicked.connect(lambda _=False, name=v.name: self.press(name))
            buttons.addWidget(b)
            self.value_buttons[v.name] = b
        self.enter_button = None
        if self.attribute.multilabel:
            self.enter_button = _button("Done  [Enter]")
            self.enter_button.clicked.connect(self.commit_multi)
            buttons.addWidget(self.enter_button)
        self.accept_button = _button("Accept prediction  [Enter]")
        self.accept_button.clicked.connect(self.accept)
        self.split_button = _button("Change point here  [S]")
        self.split_button.clicked.connect(self.toggle_change_point)
        self.faceless_button = _button("Faces not visible \u2192 unsure  [F]")
        self.faceless_button.clicked.connect(self.faceless)
        self.grid_button = _button("Grid of predictions  [G]")
        self.grid_button.clicked.connect(self.open_grid)
        self.along = QCheckBox("Label to the next change point (T)")
        self.along.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.along.setChecked(True)
        for w in (self.accept_button, self.split_button, self.faceless_button, self.grid_button, self.along):
            buttons.addWidget(w)
        # face visibility matters for expressions (the emotion aspect): the key is offered there
        self.faceless_button.setVisible(self.attribute.aspect == "emotion")
        buttons.addStretch(1)

        self.strip_buttons: list[QToolButton] = []
        self._strip_keys: list[tuple] = []  # what each strip button shows now: re-set only what changed
        self.strip_layout, strip_scroll = scroll_row(STRIP.height() + 48)

        left = QVBoxLayout()
        left.addWidget(self.image)
        left.addWidget(self.info)
        left.addWidget(self.prediction_label)
        top = QHBoxLayout()
        top.addLayout(left)
        top.addLayout(buttons, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top, 1)
        layout.addWidget(QLabel("Track (click a crop to show it; , and . step; orange = change point, "
                                "yellow = shown; \u2713 clicked, \u2192 propagated, \u2605 accepted):"))
        layout.addWidget(strip_scroll)

    # -- rendering -----------------------------------------------------------------------------
    def render_item(self, item: CropItem | None) -> None:
        self.image.show_crop(self.cache, item.image_path if item else None)
        self.context = None
        if item is not None:
            try:
                self.context = self.service.track_context(item.id, self.attribute.name, strip=ATTRIBUTE_STRIP)
            except UserError as exc:
                self.message.emit(str(exc))
        current = item.labels.get(self.attribute.name) if item else None
        chosen = set(current if isinstance(current, list) else [current] if current else [])
        pred = self.context.prediction if self.context is not None else None
        predicted = set(pred.value if isinstance(pred.value, list) else [pred.value]) if pred is not None else set()
        for name, b in self.value_buttons.items():
            b.setEnabled(item is not None)
            if b.isCheckable():
                # an unlabelled crop starts from its prediction: Enter accepts it as is
                b.setChecked(name in (chosen or predicted))
            style = "font-weight:bold;" if name in chosen else PREDICTED_STYLE if name in predicted else ""
            if b.styleSheet() != style and not b.isCheckable():
                b.setStyleSheet(style)
        self.accept_button.setEnabled(pred is not None)
        self.prediction_label.setText(
            f"prediction: <b>{self._value_text(pred.value)}</b> ({pred.confidence:.0%}) \u00b7 Enter accepts"
            if pred is not None else ""
        )
        for b in (self.split_button, self.faceless_button):
            b.setEnabled(item is not None)
        if item is None:
            self.info.setText("Nothing left in this queue.")
        else:
            ctx = self.context
            where = ""
            if ctx is not None:
                end = "end of track" if ctx.segment[1] is None else f"frame {ctx.segment[1]}"
                where = (f"<br>track {ctx.track_length} crops, {len(ctx.change_points)} change point(s); "
                         f"a key labels {ctx.segment_crops} crop(s) (to {end})")
                if self.attribute.aspect == "emotion" and ctx.faceless:
                    where += f"; {ctx.faceless} without a visible face (F)"
            self.info.setText(f"crop {item.id} · video {item.video_id} · track {item.track_id} · "
                              f"frame {item.frame_index}{where}")
        self._render_strip()

    def _value_text(self, value) -> str:
        labels = {v.name: v.label for v in self.attribute.values}
        names = value if isinstance(value, list) else [value]
        return " + ".join(labels.get(n, n) for n in names)

    def _render_strip(self) -> None:
        strip = self.context.strip if self.context is not None else ()
        while len(self.strip_buttons) < len(strip):
            b = thumb_button(STRIP)
            b.setFixedWidth(STRIP.width() + 36)
            index = len(self.strip_buttons)
            b.clicked.connect(lambda _=False, i=index: self.show_strip_crop(i))
            self.strip_layout.insertWidget(index, b)
            self.strip_buttons.append(b)
            self._strip_keys.append(())
        marks = {"clicked": "\u2713", "propagated": "\u2192", "accepted": "\u2605", "inherited": "\u2193"}
        for i, b in enumerate(self.strip_buttons):
            if i >= len(strip):
                b.hide()
                continue
            sc = strip[i]
            text = "-" if sc.value is None else f"{marks.get(sc.provenance, '')}{self._value_text(sc.value)[:9]}"
            style = ("border:3px solid #fc3;" if sc.current else "border:1px solid #555;") + \
                ("border-left:5px solid #f80;" if sc.change_point else "")
            # each part re-set only when it changed: a new stylesheet re-polishes the button (the costly part)
            last = self._strip_keys[i] or ("", "", "", "")
            if last[0] != str(sc.image_path):
                b.setIcon(QIcon(self.cache.pixmap(sc.image_path, STRIP)))
            if last[1] != text:
                b.setText(text)
            if last[2] != style:
                b.setStyleSheet(f"QToolButton{{{style}}}")
            tip = (f"crop {sc.id}, frame {sc.frame_index}"
                   + (f": {self._value_text(sc.value)} ({sc.provenance})" if sc.value is not None else "")
                   + (" \u00b7 change point" if sc.change_point else "")
                   + (" \u00b7 no visible face" if sc.face_visible is False else ""))  # fmt: skip
            if last[3] != tip:
                b.setToolTip(tip)
            self._strip_keys[i] = (str(sc.image_path), text, style, tip)
            if b.isHidden():
                b.show()
        self.cache.prefetch(sc.image_path for sc in strip)

    # -- actions -------------------------------------------------------------------------------
    def _done(self, action) -> None:
        """After a write: on to the next crop when the one shown got labelled, else show it again."""
        if action is None:
            return
        if self.item is not None and self.item.id in action.crop_ids:
            self.message.emit(f"labelled {len(action.crop_ids)} crop(s)")
            self.after_label()
        else:
            self.message.emit(f"labelled {len(action.crop_ids)} crop(s) of the track")
            self.labelled.emit()
            self.refresh()

    def refresh(self) -> None:
        """Show the current crop again (its labels, strip and prediction as the store holds them now)."""
        if self.item is not None:
            self.show_item(self.service.get_item(self.item.id))

    def press(self, name: str) -> None:
        if self.item is None:
            return
        if self.attribute.multilabel and name != self.attribute.unsure_value:
            return  # a toggle; the value is written on Enter
        self._done(self.run(self.service.label_track, self.item.id, name, self.attribute.name,
                            along_track=self.along.isChecked()))  # fmt: skip

    def checked(self) -> list[str]:
        return [n for n, b in self.value_buttons.items() if b.isCheckable() and b.isChecked()]

    def commit_multi(self) -> None:
        if self.item is None:
            return
        values = self.checked()
        if not values:
            self.message.emit("toggle at least one value (or 0 for not visible), then Enter")
            return
        pred = self.context.prediction if self.context is not None else None
        if pred is not None and set(values) == set(pred.value):  # the prediction as it was shown: accepted
            self.accept()
            return
        self._done(self.run(self.service.label_track, self.item.id, values, self.attribute.name,
                            along_track=self.along.isChecked()))  # fmt: skip

    def accept(self) -> None:
        """Enter / Space: the prediction shown becomes the label (provenance ``accepted``)."""
        if self.item is None:
            return
        if self.context is None or self.context.prediction is None:
            self.message.emit("no prediction for this crop: press a value key")
            return
        self._done(self.run(self.service.accept_prediction, self.item.id, self.attribute.name,
                            along_track=self.along.isChecked()))  # fmt: skip

    def toggle_change_point(self) -> None:
        if self.item is None:
            return
        done = self.run(self.service.toggle_change_point, self.item.id, self.attribute.name)
        if done is not None:
            self.message.emit(f"change point {'marked' if done.added else 'removed'} at frame {done.frame_index}: "
                              "the next label from here runs to the following one")  # fmt: skip
            self.labelled.emit()
            self.refresh()

    def faceless(self) -> None:
        if self.item is not None:
            self._done(self.run(self.service.label_faceless, self.item.id, self.attribute.name))

    def show_strip_crop(self, index: int) -> None:
        strip = self.context.strip if self.context is not None else ()
        if 0 <= index < len(strip) and not strip[index].current:
            self.show_track_crop(strip[index].id)

    def show_track_crop(self, crop_id: int | None) -> None:
        """Show another crop of the track (to mark a change point or label from there)."""
        if crop_id is None or self.item is None:
            return
        self._back.append(self.item.id)
        self.show_item(self.service.get_item(crop_id))

    def open_grid(self):
        """G: the grid of unlabelled crops sharing a predicted value (a window of its own)."""
        from annotator_gui.grid import GridWindow

        if self.grid_window is None:
            self.grid_window = GridWindow(self.service, self.cache, self.attribute.name)
            self.grid_window.accepted.connect(lambda: (self.labelled.emit(), self.refresh_or_advance()))
        self.grid_window.reload()
        self.grid_window.show()
        self.grid_window.raise_()
        return self.grid_window

    def refresh_or_advance(self) -> None:
        """After the grid wrote labels: the crop shown may be one of them."""
        if self.item is None:
            return
        item = self.service.get_item(self.item.id)
        if item.labels.get(self.attribute.name) is not None and not self.service.second_opinion:
            self.advance()
        else:
            self.show_item(item)

    def handle_key(self, event: QKeyEvent) -> bool:
        key, text = event.key(), event.text().lower()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.commit_multi() if self.attribute.multilabel else self.accept()
            return True
        if key == Qt.Key.Key_Space:
            self.accept()
            return True
        actions = {"s": self.toggle_change_point, "g": self.open_grid, "t": self.along.toggle,
                   ",": lambda: self.show_track_crop(self.context.previous if self.context else None),
                   ".": lambda: self.show_track_crop(self.context.following if self.context else None)}  # fmt: skip
        if self.attribute.aspect == "emotion":
            actions["f"] = self.faceless
        if text in actions:
            actions[text]()
            return True
        for v in self.attribute.values:
            if text and text == v.hotkey.lower():
                b = self.value_buttons[v.name]
                if b.isCheckable():
                    b.toggle()
                else:
                    self.press(v.name)
                return True
        return False
