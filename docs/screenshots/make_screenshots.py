"""Screenshots of each view of the annotation app, taken from real windows on an X server (Xvfb).

    python docs/screenshots/make_screenshots.py          # starts `Xvfb :99` itself when DISPLAY is unset

Builds a throwaway project with real person crops (MOT17 ground-truth boxes from ../shared/data when
present, rendered figures otherwise), labels part of it through the annotation service like annotators
would, then opens each window and grabs it from the screen into docs/screenshots/*.png (palette PNGs).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MOT = HERE.parents[2] / "shared" / "data" / "mot" / "MOT17-mini" / "train"


def ensure_display() -> subprocess.Popen | None:
    if os.environ.get("DISPLAY"):
        return None
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        sys.exit("no DISPLAY and no Xvfb: install xvfb or run under a desktop session")
    proc = subprocess.Popen([xvfb, ":99", "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ["DISPLAY"] = ":99"
    time.sleep(1.0)
    return proc


def build(root: Path):
    from portrait_builder.annotation import AnnotationService, add_annotator
    from portrait_builder.store import Project
    from portrait_builder.testing.annotation_sample import populate_sample

    project = Project.init(root)
    crop_ids = populate_sample(project, [MOT / "MOT17-04-FRCNN", MOT / "MOT17-02-FRCNN", MOT / "MOT17-09-FRCNN"], max_tracks=9)
    add_annotator(project, "ana", "annotator", "identity")
    add_annotator(project, "ben", "annotator", "age")
    add_annotator(project, "cleo", "annotator", "age")
    add_annotator(project, "dev", "annotator", "expression")
    add_annotator(project, "rita", "reviewer")
    ana = AnnotationService(project, "ana")
    names = ["Station master", "Woman in white", "Man with bag", "Jogger", "Tourist", "Courier"]
    made = 0
    # name characters of the first movie as an annotator would (whole track but its last crop,
    # so the app later shows that crop with its character's exemplar on top of the grid)
    genders = ["male", "female", "male", "male", "female", "male"]
    tracks: dict[int, list[int]] = {}
    for crop_id in crop_ids:
        item = ana.get_item(crop_id)
        if item.video_id == 1:
            tracks.setdefault(item.track_id, []).append(crop_id)
    for track in list(tracks.values())[: len(names)]:
        ana.new_identity(track[0], genders[made], names[made], also=track[1:-1])
        made += 1
    ana.close()
    ben, cleo = AnnotationService(project, "ben"), AnnotationService(project, "cleo")
    ages = ["young_adult", "middle_aged", "young_adult", "elderly", "teenager", "young_adult", "middle_aged", "young_adult"]
    for i in range(8):
        item = ben.next_item()
        ben.set_label(item.id, "age", ages[i])
        cleo.set_label(item.id, "age", ages[i] if i % 4 else "middle_aged")
    ben.close()
    cleo.close()
    return project


def save(widget, name: str) -> Path:
    from PIL import Image
    from PySide6.QtCore import QBuffer, QIODevice
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    screen = widget.screen()
    pixmap = screen.grabWindow(widget.winId()) if screen is not None else widget.grab()
    if pixmap.isNull() or pixmap.width() < 50:
        pixmap = widget.grab()
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    pixmap.save(buf, "PNG")
    image = Image.open(io.BytesIO(bytes(buf.data()))).convert("RGB")
    out = HERE / f"{name}.png"
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out.relative_to(HERE.parents[1])} ({out.stat().st_size // 1024} KiB, {image.width}x{image.height})")
    return out


def main() -> int:
    xvfb = ensure_display()
    tmp = Path(tempfile.mkdtemp(prefix="pb-shots-"))
    try:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest
        from PySide6.QtWidgets import QApplication

        from annotator_gui.app import AnnotationWindow
        from annotator_gui.review import ReviewWindow
        from portrait_builder.annotation import AnnotationService

        app = QApplication.instance() or QApplication(sys.argv[:1])
        project = build(tmp / "proj")

        w = AnnotationWindow(AnnotationService(project, "ana"))
        w.resize(1100, 760)
        w.show()
        w.statusBar().showMessage("click the matching character (1-9), N new identity, U unknown person")
        save(w, "identity")
        QTest.keyClick(w.view, Qt.Key.Key_N)
        save(w, "identity_new_gender")
        QTest.keyClick(w.view, Qt.Key.Key_Escape)
        w.close()

        w = AnnotationWindow(AnnotationService(project, "ben"))
        w.resize(820, 560)
        w.show()
        save(w, "attribute_age")
        w.close()

        w = AnnotationWindow(AnnotationService(project, "dev"))
        w.resize(820, 560)
        w.show()
        QTest.keyClick(w.view, Qt.Key.Key_1)
        QTest.keyClick(w.view, Qt.Key.Key_6)
        w.statusBar().showMessage("expression: several may apply; toggle with the keys, then Enter")
        save(w, "attribute_expression")
        w.close()

        r = ReviewWindow(AnnotationService(project, "rita", "age"))
        r.resize(1000, 680)
        r.show()
        r.table.setCurrentCell(1, 0)
        save(r, "review")
        r.close()
        app.processEvents()
        project.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if xvfb is not None:
            xvfb.terminate()
    sys.stdout.flush()
    os._exit(0)  # skip PySide6's interpreter-shutdown teardown


if __name__ == "__main__":
    main()
