"""Qt tests run offscreen with pytest-qt; the fixture builds a project with real crops."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt creates the QApplication

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

MOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "mot" / "MOT17-mini" / "train"


@pytest.fixture
def gui_project(tmp_path):
    """A SQLite project with MOT17 person crops (rendered ones without ../shared/data) and annotators."""
    from portrait_builder.annotation import add_annotator
    from portrait_builder.store import Project
    from portrait_builder.testing.annotation_sample import populate_sample

    project = Project.init(tmp_path / "proj")
    ids = populate_sample(project, [MOT / "MOT17-02-FRCNN", MOT / "MOT17-05-FRCNN"], max_tracks=5)
    add_annotator(project, "ann_id", "annotator", "identity")
    add_annotator(project, "ann_age", "annotator", "age")
    add_annotator(project, "ann_age2", "annotator", "age")
    add_annotator(project, "ann_expr", "annotator", "expression")
    add_annotator(project, "rev", "reviewer")
    yield project, ids
    project.close()


@pytest.fixture
def open_window(qtbot):
    """Open an AnnotationWindow for an annotator; closed (leases released) at teardown."""
    from annotator_gui.app import AnnotationWindow
    from portrait_builder.annotation import AnnotationService

    windows = []

    def _open(project, name, attribute=None):
        w = AnnotationWindow(AnnotationService(project, name, attribute))
        qtbot.addWidget(w)
        w.show()
        windows.append(w)
        return w

    yield _open
    for w in windows:
        w.close()
