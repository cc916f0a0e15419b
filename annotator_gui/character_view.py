"""The character-level view for static attributes (age, physique, height): one key sets the value on
the current crop's character (inherited by all its crops, and by crops assigned to it later), or on
the crop's track when it has no character. ``C`` first makes the next key label this crop only.

Thin widget over :class:`portrait_builder.annotation.AnnotationService` (``character_context``,
``label_character_or_track``, ``set_label``); the queue, undo and navigation are LabelView's.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from annotator_gui.images import ImageCache
from annotator_gui.views import CropImage, LabelView, _button
from portrait_builder.annotation import AnnotationService, CropItem
from portrait_builder.annotation.character_attributes import CharacterContext

CHARACTER = QSize(96, 192)


class CharacterView(LabelView):
    """The current crop, its character (exemplar, crop count, current value) and one button per value."""

    def __init__(self, service: AnnotationService, cache: ImageCache, attribute: str, parent: QWidget | None = None):
        super().__init__(service, cache, parent)
        self.attribute = service.taxonomy.attribute(attribute)
        self.context: CharacterContext | None = None
        self.image = CropImage()
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setFixedWidth(self.image.width())

        self.character_image = CropImage(CHARACTER)
        self.character_text = QLabel()
        self.character_text.setWordWrap(True)
        self.character_text.setFixedWidth(CHARACTER.width() + 120)
        self.crop_only = QCheckBox("This crop only (C)")
        self.crop_only.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.crop_only.setToolTip("the next key labels only the crop shown (a hand-set label: the character's "
                                  "value never overwrites it)")

        title = self.attribute.name.replace("_", " ").capitalize()
        buttons = QVBoxLayout()
        buttons.addWidget(QLabel(f"<b>{title}</b> of the character (or of the track without one)"))
        self.value_buttons: dict[str, QPushButton] = {}
        for v in self.attribute.values:
            b = _button(f"{v.label}   [{v.hotkey.upper()}]")
            b.clicked.connect(lambda _=False, name=v.name: self.press(name))
            buttons.addWidget(b)
            self.value_buttons[v.name] = b
        buttons.addWidget(self.crop_only)
        buttons.addStretch(1)

        left = QVBoxLayout()
        left.addWidget(QLabel("<b>Current crop</b>"))
        left.addWidget(self.image)
        left.addWidget(self.info)
        left.addStretch(1)
        middle = QVBoxLayout()
        middle.addWidget(QLabel("<b>Character</b>"))
        middle.addWidget(self.character_image)
        middle.addWidget(self.character_text)
        middle.addStretch(1)
        layout = QHBoxLayout(self)
        layout.addLayout(left)
        layout.addLayout(middle)
        layout.addLayout(buttons, 1)

    def render_item(self, item: CropItem | None) -> None:
        self.image.show_crop(self.cache, item.image_path if item else None)
        self.crop_only.setChecked(False)
        for b in self.value_buttons.values():
            b.setEnabled(item is not None)
            b.setStyleSheet("")
        if item is None:
            self.context = None
            self.info.setText("Nothing left in this queue.")
            self.character_image.show_crop(self.cache, None)
            self.character_text.setText("")
            return
        self.info.setText(f"crop {item.id} · video {item.video_id} · track {item.track_id} · frame {item.frame_index}")
        ctx = self.context = self.service.character_context(item.id, self.attribute.name)
        if ctx.identity_id is None:
            self.character_image.show_crop(self.cache, None)
            self.character_image.setText("no character")
            self.character_text.setText(
                f"This track has no character yet: a key labels its {ctx.track_crops} crop(s) without a character."
            )
        else:
            name = ctx.name or f"ID {ctx.identity_id}"
            self.character_image.show_crop(self.cache, ctx.exemplar_path)
            shown = self.attribute.values[self.attribute.value_names.index(ctx.value)].label if ctx.value else "not set"
            self.character_text.setText(
                f"<b>{name}</b> ({ctx.gender or '?'}) · {ctx.character_crops} crops<br>"
                f"{self.attribute.name} on the character: <b>{shown}</b><br>"
                "a key sets it on the character: every crop of it without a hand-set label, and crops added later"
            )
            if ctx.value in self.value_buttons:
                self.value_buttons[ctx.value].setStyleSheet("font-weight:bold;")

    def press(self, name: str) -> None:
        if self.item is None:
            return
        if self.crop_only.isChecked() or self.service.second_opinion:  # a second opinion is per crop
            done = self.run(self.service.set_label, [self.item.id], self.attribute.name, name)
        else:
            done = self.run(self.service.label_character_or_track, self.item.id, name, self.attribute.name)
        if done is not None:
            n = len(done.crop_ids)
            self.message.emit(f"{self.attribute.name} = {name} on {n} crop(s)")
            self.after_label()

    def handle_key(self, event: QKeyEvent) -> bool:
        text = event.text().lower()
        if text == "c":
            self.crop_only.toggle()
            return True
        for v in self.attribute.values:
            if text and text == v.hotkey.lower():
                self.press(v.name)
                return True
        return False
