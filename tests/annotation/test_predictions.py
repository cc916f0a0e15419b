"""Pre-labels to confirm and provenance in review, through the real service on SQLite and PostgreSQL
(real MOT17 person crops; predictions stored with the store's own ``store_predictions``, as
``portrait prelabel`` does). Kappa over clicked labels is checked against scikit-learn's
``cohen_kappa_score`` on the same pairs."""

from __future__ import annotations

import math

import pytest
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import func, select

from portrait_builder.annotation import AnnotationPermissionError, AnnotationService, add_annotator
from portrait_builder.errors import UserError
from portrait_builder.store.models import CurrentLabel, Label
from portrait_builder.store.predictions import store_predictions
from portrait_builder.testing.annotation_sample import crops_by_track

BODY = "body_posture"


def tracks(project) -> list[list[int]]:
    return list(crops_by_track(project).values())


def current(project, crop_ids, attribute=BODY) -> dict[int, tuple[str, str]]:
    with project.session() as s:
        rows = s.execute(
            select(CurrentLabel.crop_id, CurrentLabel.value, Label.provenance)
            .join(Label, Label.id == CurrentLabel.label_id)
            .where(CurrentLabel.attribute == attribute, CurrentLabel.crop_id.in_(list(crop_ids)),
                   CurrentLabel.value.is_not(None))
        ).all()  # fmt: skip
    return {r.crop_id: (r.value, r.provenance) for r in rows}


def test_prediction_shown_accepted_along_the_track_and_grid_accept(annotated):
    project, crop_ids = annotated
    add_annotator(project, "ann_body", "annotator", BODY)
    first = tracks(project)[0]
    # the first track predicted "walking" on its first crop; 12 crops of other tracks "standing" (one
    # of them "sitting"), confidences descending with the crop id
    others = [c for c in crop_ids if c not in first][:13]
    rows = [(first[0], BODY, "walking", 0.7)]
    rows += [(c, BODY, "sitting" if i == 5 else "standing", 0.99 - 0.01 * i) for i, c in enumerate(others)]
    project.run_write(lambda s: store_predictions(s, rows, "sha-test"))
    with project.session() as s:  # a prediction alone is never a label
        assert s.scalar(select(func.count()).select_from(Label)) == 0

    svc = AnnotationService(project, "ann_body")
    try:
        ctx = svc.track_context(first[0])
        assert ctx.prediction is not None and ctx.prediction.value == "walking" and ctx.prediction.confidence == 0.7
        assert svc.track_context(first[1]).prediction is None  # no prediction for that crop
        svc.accept_prediction(first[0])
        got = current(project, first)
        assert got[first[0]] == ("walking", "accepted")
        assert all(got[c] == ("walking", "propagated") for c in first[1:])
        assert svc.track_context(first[0]).prediction is None  # labelled: nothing to propose any more
        with pytest.raises(UserError, match="no prediction"):
            svc.accept_prediction(crop_ids[-1])

        values = {v.value: v.crops for v in svc.predicted_values()}
        assert values == {"standing": 12, "sitting": 1}  # the accepted crop is labelled: out of the grid
        grid = svc.grid("standing", limit=8)
        standing = [c for i, c in enumerate(others) if i != 5]
        assert [g.crop_id for g in grid.items] == standing[:8] and grid.total == 12
        assert all(g.image_path.is_file() for g in grid.items)
        page2 = svc.grid("standing", limit=8, after=grid.next_after)
        assert [g.crop_id for g in page2.items] == standing[8:] and page2.next_after is None
        # someone labels one grid crop meanwhile; the annotator deselects two wrong ones and accepts the rest
        svc.label_track(standing[0], "running", along_track=False)
        wrong = {standing[2], standing[3]}
        action = svc.accept_grid([g.crop_id for g in grid.items if g.crop_id not in wrong], "standing")
        accepted = [c for c in standing[1:8] if c not in wrong]
        assert sorted(action.crop_ids) == sorted(accepted)
        got = current(project, standing)
        assert all(got[c] == ("standing", "accepted") for c in accepted)
        assert got[standing[0]] == ("running", "clicked") and not wrong & set(got)
        assert {g.crop_id for g in svc.grid("standing").items} == wrong | set(standing[8:])
        svc.undo()
        assert set(current(project, standing)) == {standing[0]}
        assert svc.grid("standing").total == 11
        svc.redo()
        assert set(current(project, standing)) == {standing[0], *accepted}
    finally:
        svc.close()
    expr = AnnotationService(project, "ann_expr")  # one attribute per annotator
    try:
        with pytest.raises(AnnotationPermissionError):
            expr.accept_grid(standing[8:], "standing", BODY)
        with pytest.raises(AnnotationPermissionError):
            expr.accept_prediction(others[0], BODY)
    finally:
        expr.close()


def test_review_by_provenance_history_and_kappa_on_clicks(annotated):
    project, _ = annotated
    add_annotator(project, "ann_body", "annotator", BODY)
    add_annotator(project, "ann_body2", "annotator", BODY)
    first, second, third = tracks(project)[:3]
    a, b = AnnotationService(project, "ann_body"), AnnotationService(project, "ann_body2")
    rev = AnnotationService(project, "rev", BODY)
    try:
        a.label_track(first[0], "standing")  # first[0] clicked, the rest propagated
        b.label_track(first[0], "standing")
        b.label_track(first[1], "sitting", along_track=False)  # b clicked first[1]; a's is propagated
        pairs = [("walking", "walking"), ("walking", "running"), ("sitting", "sitting"), ("running", "running")]
        for crop, (va, vb) in zip(second, pairs, strict=False):
            a.label_track(crop, va, along_track=False)
            b.label_track(crop, vb, along_track=False)
        a.label_track(third[0], "bending")

        propagated = rev.review_labels(BODY, provenance="propagated")
        assert {r.crop_id for r in propagated} == set(first[2:]) | set(third[1:])
        assert {r.provenance for r in propagated} == {"propagated"}
        clicked = rev.review_labels(BODY, provenance="clicked")
        assert {r.crop_id for r in clicked} == {first[0], first[1], third[0], *second[:len(pairs)]}
        with pytest.raises(UserError, match="unknown provenance"):
            rev.review_labels(BODY, provenance="guessed")
        history = rev.label_history(first[1], BODY)
        assert [(h.annotator, h.value, h.provenance) for h in history] == [
            ("ann_body", "standing", "propagated"), ("ann_body2", "standing", "propagated"),
            ("ann_body2", "sitting", "clicked")]  # fmt: skip

        # kappa over every label both gave vs over their clicks only; reference: scikit-learn
        la, lb = rev.annotator_labels(BODY, "ann_body"), rev.annotator_labels(BODY, "ann_body2")
        both = sorted(set(la) & set(lb))
        full = rev.kappa(BODY, "ann_body", "ann_body2")
        assert full.n == len(both) == len(first) + len(pairs)
        assert math.isclose(full.kappa, cohen_kappa_score([la[c] for c in both], [lb[c] for c in both]))
        clicks = rev.kappa(BODY, "ann_body", "ann_body2", clicked_only=True)
        ca = [first[0], *second[:len(pairs)]]  # crops both clicked: first[1] was only b's click
        assert clicks.n == len(ca)
        assert math.isclose(clicks.kappa, cohen_kappa_score([la[c] for c in ca], [lb[c] for c in ca]))
        assert [k.n for k in rev.agreement(BODY, clicked_only=True)] == [len(ca)]
    finally:
        for svc in (a, b, rev):
            svc.close()
