"""The grid of predictions, driven through the real widgets offscreen (real MOT17 person crops,
predictions stored as ``portrait prelabel`` stores them): G opens it from the attribute view, a click
unticks a wrong crop, Enter accepts the rest (provenance ``accepted``), Ctrl+Z takes the page back;
checked against what the store holds."""

from __future__ import annotations

from PySide6.QtCore import Qt
from sqlalchemy import func, select

from annotator_gui.grid import GridWindow
from portrait_builder.annotation import add_annotator
from portrait_builder.store.models import CurrentLabel, Label
from portrait_builder.store.predictions import store_predictions

BODY = "body_posture"
PAGE = 8  # the sample has fewer crops than the grid's 48 per page: smaller pages, so there are several


def labels(project) -> dict[int, tuple[str, str]]:
    with project.session() as s:
        rows = s.execute(select(CurrentLabel.crop_id, CurrentLabel.value, Label.provenance)
                         .join(Label, Label.id == CurrentLabel.label_id)
                         .where(CurrentLabel.attribute == BODY, CurrentLabel.value.is_not(None))).all()  # fmt: skip
    return {c: (v, p) for c, v, p in rows}


def test_grid_unticks_wrong_crops_accepts_the_rest_and_undoes(gui_project, open_window, qtbot):
    project, ids = gui_project
    add_annotator(project, "ann_body", "annotator", BODY)
    n = PAGE + 4
    standing = ids[1:n + 1]
    rows = [(c, BODY, "standing", 0.95 - 0.001 * i) for i, c in enumerate(standing)] + [(ids[0], BODY, "sitting", 0.9)]
    project.run_write(lambda s: store_predictions(s, rows, "sha-test"))
    w = open_window(project, "ann_body")
    view = w.view
    with project.session() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == 0  # predictions are no labels
    qtbot.keyClick(view, Qt.Key.Key_G)
    grid = view.grid_window
    grid.page_size = PAGE
    grid.reload()
    assert isinstance(grid, GridWindow) and grid.isVisible()
    assert grid.values.currentData() == "standing"  # the value with most crops first
    page = grid.page.items
    assert [it.crop_id for it in page] == standing[:PAGE] and grid.page.total == len(standing)
    shown = [b for b in grid.buttons if b.isVisibleTo(grid)]
    assert len(shown) == len(page) and all(b.isChecked() for b in shown)
    # two wrong ones: a click unticks each; Enter accepts the rest in one action
    qtbot.mouseClick(grid.buttons[1], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(grid.buttons[4], Qt.MouseButton.LeftButton)
    wrong = {page[1].crop_id, page[4].crop_id}
    qtbot.keyClick(grid, Qt.Key.Key_Return)
    got = labels(project)
    accepted = [it.crop_id for it in page if it.crop_id not in wrong]
    assert sorted(got) == sorted(accepted) and set(got.values()) == {("standing", "accepted")}
    # the next page follows; the unticked crops stay unlabelled for the queue
    assert [it.crop_id for it in grid.page.items] == standing[PAGE:]
    # Ctrl+Z in the grid: the whole accept goes back, and its page is shown again
    qtbot.keyClick(grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert labels(project) == {}
    assert [it.crop_id for it in grid.page.items] == standing[:PAGE]
    # the other value; Esc closes the grid
    grid.select_value("sitting")
    assert [it.crop_id for it in grid.page.items] == [ids[0]]
    qtbot.keyClick(grid, Qt.Key.Key_Return)
    assert labels(project) == {ids[0]: ("sitting", "accepted")}
    qtbot.keyClick(grid, Qt.Key.Key_Escape)
    assert not grid.isVisible()
    # the attribute view showed ids[0] (the queue's first crop): labelled by the grid, so it moved on
    assert view.item.id != ids[0]
