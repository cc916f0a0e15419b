"""Review of labels made along tracks, through the real review window offscreen: the provenance filter,
the provenance column, a crop's history with provenance, and kappa over clicked labels only (the
window's numbers are the service's, which tests/annotation/test_predictions.py checks against scikit-learn)."""

from __future__ import annotations

from sqlalchemy import select

from portrait_builder.annotation import AnnotationService, add_annotator
from portrait_builder.store.models import Crop

BODY = "body_posture"


def _all(project) -> list[int]:
    with project.session() as s:
        return list(s.scalars(select(Crop.id)))


def test_review_filters_by_provenance_shows_history_and_kappa_on_clicks(gui_project, qtbot):
    from annotator_gui.review import ReviewWindow

    project, _ = gui_project
    add_annotator(project, "ann_body", "annotator", BODY)
    add_annotator(project, "ann_body2", "annotator", BODY)
    with project.session() as s:
        track = list(s.scalars(select(Crop.id).where(Crop.track_id == s.scalar(select(Crop.track_id).limit(1)))
                               .order_by(Crop.frame_index)))  # fmt: skip
    a, b = AnnotationService(project, "ann_body"), AnnotationService(project, "ann_body2")
    a.label_track(track[0], "standing")  # track[0] clicked, the rest propagated
    b.label_track(track[0], "standing", along_track=False)
    b.label_track(track[1], "sitting", along_track=False)
    other = max(project_crop for project_crop in _all(project) if project_crop not in track)
    a.label_track(other, "walking", along_track=False)  # both click one crop of another track
    b.label_track(other, "running", along_track=False)
    a.close()
    b.close()
    w = ReviewWindow(AnnotationService(project, "rev", BODY))
    qtbot.addWidget(w)
    w.set_filters(BODY, provenance="propagated")
    assert {r.crop_id for r in w.rows} == set(track[2:])
    assert {w.table.item(i, 3).text() for i in range(w.table.rowCount())} == {"propagated"}
    w.set_filters(BODY, provenance="clicked")
    assert {r.crop_id for r in w.rows} == {track[0], track[1], other}
    row = next(i for i, r in enumerate(w.rows) if r.crop_id == track[1])
    w.table.setCurrentCell(row, 0)
    history = [tuple(w.history.item(i, c).text() for c in range(3)) for i in range(w.history.rowCount())]
    assert history == [("standing", "ann_body", "propagated"), ("sitting", "ann_body2", "clicked")]
    # kappa: every label both gave (3 crops) vs clicked ones only (track[1] was b's click, a's propagation)
    assert "n = 3" in w.kappa_label.text()
    w.clicked_only.setChecked(True)
    assert "n = 2" in w.kappa_label.text()
    w.close()
