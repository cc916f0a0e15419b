"""Dynamic attributes along tracks through the real service on SQLite and PostgreSQL (real MOT17 person
crops): one key labels the crop and the rest of its track up to the next change point, change points
split tracks, crops without a visible face go to "unsure" per track, each one undoable action; one
attribute per annotator holds. The expected labels are worked out here from frame order and change
points alone (the reference), independently of the module's segment code."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from portrait_builder.annotation import AnnotationPermissionError, AnnotationService, add_annotator
from portrait_builder.errors import UserError
from portrait_builder.store.models import ChangePoint, Crop, CurrentLabel, Label
from portrait_builder.testing.annotation_sample import crops_by_track

BODY = "body_posture"


def longest_track(project) -> list[int]:
    """Crop ids of the longest track, in frame order."""
    return max(crops_by_track(project).values(), key=len)


def labels_of(project, crop_ids, attribute=BODY) -> list[tuple[str | None, str | None]]:
    """(current value, its provenance) of each crop, in the given order."""
    with project.session() as s:
        rows = dict(
            (r.crop_id, (r.value, r.provenance if r.value is not None else None))
            for r in s.execute(
                select(CurrentLabel.crop_id, CurrentLabel.value, Label.provenance)
                .join(Label, Label.id == CurrentLabel.label_id)
                .where(CurrentLabel.attribute == attribute, CurrentLabel.crop_id.in_(list(crop_ids)))
            )
        )
    return [rows.get(c, (None, None)) for c in crop_ids]


@pytest.fixture
def body(annotated):
    project, _ = annotated
    add_annotator(project, "ann_body", "annotator", BODY)
    track = longest_track(project)
    assert len(track) >= 5  # MOT17's longest sample track (the rendered fallback has five crops)
    svc = AnnotationService(project, "ann_body")
    yield project, svc, track
    svc.close()


def test_one_key_labels_the_track_and_undo_restores_it(body):
    project, svc, track = body
    action = svc.label_track(track[0], "standing")
    assert set(action.crop_ids) == set(track)
    assert labels_of(project, track) == [("standing", "clicked")] + [("standing", "propagated")] * (len(track) - 1)
    with project.session() as s:  # one action: one timestamp on every label it wrote
        assert s.scalar(select(Label.created_at).where(Label.crop_id == track[0], Label.attribute == BODY)) == \
            s.scalar(select(Label.created_at).where(Label.crop_id == track[-1], Label.attribute == BODY))
    add_annotator(project, "ann_body2", "annotator", BODY)
    second = AnnotationService(project, "ann_body2", second_opinion=True)
    try:  # a second opinion sees the track but not the first annotator's values (no anchoring)
        assert [c.value for c in second.track_context(track[0]).strip] == [None] * len(track)
        assert [c.value for c in svc.track_context(track[0]).strip] == ["standing"] * len(track)
    finally:
        second.close()
    undone = svc.undo()
    assert set(undone.crop_ids) == set(track)
    assert labels_of(project, track) == [(None, None)] * len(track)
    svc.redo()
    assert [v for v, _ in labels_of(project, track)] == ["standing"] * len(track)


def test_change_points_split_the_track_and_clicks_of_other_crops_stay(body):
    project, svc, track = body
    n = len(track)
    k = max(2, n // 3)
    j = max(k + 1, (2 * n) // 3)
    svc.label_track(track[0], "standing")
    mark = svc.toggle_change_point(track[k])
    assert mark.added and mark.crop_ids == [track[k]]
    with project.session() as s:
        frame_k = s.get(Crop, track[k]).frame_index
        assert s.scalars(select(ChangePoint.frame_index).where(ChangePoint.attribute == BODY)).all() == [frame_k]
    # marking alone changes no label; the next label from there runs to the following change point (none)
    assert [v for v, _ in labels_of(project, track)] == ["standing"] * n
    svc.label_track(track[k], "sitting")
    assert [v for v, _ in labels_of(project, track)] == ["standing"] * k + ["sitting"] * (n - k)
    # a click on one crop only, then a label before the change point: stops at the change point
    svc.label_track(track[j], "running", along_track=False)
    svc.label_track(track[1], "walking")
    expected = ["standing"] + ["walking"] * (k - 1) + ["sitting"] * (j - k) + ["running"] + ["sitting"] * (n - j - 1)
    assert [v for v, _ in labels_of(project, track)] == expected
    # relabelling the second segment never overwrites the clicked crop j
    svc.label_track(track[k], "bending")
    got = labels_of(project, track)
    assert got[j] == ("running", "clicked")
    assert [v for v, _ in got[k:j]] == ["bending"] * (j - k) and [v for v, _ in got[j + 1:]] == ["bending"] * (n - j - 1)
    assert got[k][1] == "clicked" and {p for _, p in got[k + 1:j]} <= {"propagated"}
    # undo the last label, then the change point: one action each, in order
    svc.undo()
    assert [v for v, _ in labels_of(project, track)] == expected
    for _ in range(3):  # walking, running, sitting
        svc.undo()
    undone = svc.undo()  # the change point
    assert undone.crop_ids == [track[k]]
    with project.session() as s:
        assert s.scalar(select(ChangePoint.id)) is None
    svc.redo()
    with project.session() as s:
        assert s.scalars(select(ChangePoint.frame_index)).all() == [frame_k]
    # a second toggle at the same crop removes it (also undoable)
    removed = svc.toggle_change_point(track[k])
    assert not removed.added
    svc.undo()
    with project.session() as s:
        assert s.scalars(select(ChangePoint.frame_index)).all() == [frame_k]


def test_context_strip_segment_and_stepping(body):
    project, svc, track = body
    n = len(track)
    k = n // 2
    with pytest.raises(UserError, match="first of track"):
        svc.toggle_change_point(track[0])
    svc.toggle_change_point(track[k])
    ctx = svc.track_context(track[1])
    assert ctx.track_length == n and ctx.segment_crops == k - 1  # crops 1..k-1
    assert ctx.previous == track[0] and ctx.following == track[2]
    shown = [c.id for c in ctx.strip]
    assert track[1] in shown and track[k] in shown and [c.id for c in ctx.strip if c.current] == [track[1]]
    assert [c.id for c in ctx.strip if c.change_point] == [track[k]]
    with project.session() as s:
        frames = [s.get(Crop, c).frame_index for c in track]
    assert ctx.segment == (frames[0], frames[k])
    assert svc.track_context(track[k]).segment == (frames[k], None)
    assert [c.frame_index for c in ctx.strip] == sorted(c.frame_index for c in ctx.strip)


def test_faceless_crops_to_unsure_once_per_track(annotated):
    project, _ = annotated
    track = longest_track(project)
    faceless = track[::3]
    project.run_write(lambda s: s.execute(update(Crop).where(Crop.id.in_(track)).values(face_visible=True)))
    project.run_write(lambda s: s.execute(update(Crop).where(Crop.id.in_(faceless)).values(face_visible=False)))
    svc = AnnotationService(project, "ann_expr")
    try:
        svc.label_track(faceless[1], ["happiness", "surprise"], along_track=False)  # a person saw this one
        assert svc.track_context(track[0]).faceless == len(faceless) - 1
        action = svc.label_faceless(track[0])
        assert set(action.crop_ids) == set(faceless) - {faceless[1]}
        got = dict(zip(track, labels_of(project, track, "expression"), strict=True))
        assert got[faceless[1]] == ("happiness|surprise", "clicked")
        for c in faceless:
            if c != faceless[1]:
                assert got[c] == ("unsure", "clicked" if c == track[0] else "propagated")
        assert all(got[c] == (None, None) for c in track if c not in faceless)
        with pytest.raises(UserError, match="no crop without a visible face"):
            svc.label_faceless(track[0])
        svc.undo()
        got = dict(zip(track, labels_of(project, track, "expression"), strict=True))
        assert [got[c][0] for c in faceless] == [None, "happiness|surprise"] + [None] * (len(faceless) - 2)
    finally:
        svc.close()


def test_one_attribute_per_annotator(annotated):
    project, _ = annotated
    track = longest_track(project)
    svc = AnnotationService(project, "ann_expr")
    try:
        for call in (lambda: svc.label_track(track[0], "standing", BODY),
                     lambda: svc.toggle_change_point(track[2], BODY),
                     lambda: svc.label_faceless(track[0], BODY)):  # fmt: skip
            with pytest.raises(AnnotationPermissionError):
                call()
        with project.session() as s:
            assert s.scalar(select(Label.id).where(Label.attribute == BODY)) is None
            assert s.scalar(select(ChangePoint.id)) is None
    finally:
        svc.close()
