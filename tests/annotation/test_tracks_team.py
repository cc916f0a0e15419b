"""Labels along tracks and change points on a team store (PostgreSQL, each person their own login,
row-level security): a body-posture annotator's login marks a change point, labels a segment
(clicked + propagated), accepts a prediction and undoes the mark; another login may neither remove
that change point nor mark one for an attribute it does not label, even with plain SQL."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from portrait_builder.testing.annotation_sample import crops_by_track
from portrait_builder.testing.team import login_url

PG_URL = os.environ.get("PORTRAIT_TEST_PG_URL")
# The `team` fixture's logins, and the tag naming its database and roles.
PEOPLE = [("ann_body", "annotator", "body_posture"), ("ann_body2", "annotator", "body_posture"),
          ("ann_age", "annotator", "age")]  # fmt: skip
TAG = "h11"

pytestmark = [pytest.mark.skipif(not PG_URL, reason="PORTRAIT_TEST_PG_URL not set (no PostgreSQL server)"),
              pytest.mark.slow]  # a database and its roles of its own


def test_change_points_and_track_labels_as_each_login(team, open_as):
    import psycopg

    from portrait_builder.annotation import AnnotationService
    from portrait_builder.errors import UserError
    from portrait_builder.store import Project
    from portrait_builder.store.models import ChangePoint, Crop, CurrentLabel, Label
    from portrait_builder.store.predictions import store_predictions

    root, database, logins = team

    owner = Project.open(root)  # the maintainer login runs `portrait prelabel`
    tracks = crops_by_track(owner)
    track = max(tracks.values(), key=len)
    k = len(track) // 2
    other = next(v for v in tracks.values() if v is not track)
    owner.run_write(lambda s: store_predictions(s, [(other[0], "body_posture", "walking", 0.9)], "sha-test"))
    owner.close()

    body_project = open_as("ann_body")
    with AnnotationService(body_project, None) as body:
        body.toggle_change_point(track[k])
        body.label_track(track[0], "standing")
        body.label_track(track[k], "sitting")
        body.accept_prediction(other[0])
        with body_project.session() as s:
            cps = s.execute(select(ChangePoint.frame_index, ChangePoint.annotator_id)).all()
            assert cps == [(s.get(Crop, track[k]).frame_index, body.annotator.id)]
            got = s.execute(select(CurrentLabel.crop_id, CurrentLabel.value, Label.provenance)
                            .join(Label, Label.id == CurrentLabel.label_id)
                            .where(CurrentLabel.attribute == "body_posture")).all()  # fmt: skip
        got = {c: (v, p) for c, v, p in got}
        assert got[track[0]] == ("standing", "clicked") and got[track[k]] == ("sitting", "clicked")
        assert [got[c][0] for c in track] == ["standing"] * k + ["sitting"] * (len(track) - k)
        assert {got[c][1] for c in track[1:k] + track[k + 1:]} == {"propagated"}
        assert all(got[c] == ("walking", "propagated") for c in other[1:])
        assert got[other[0]] == ("walking", "accepted")

        # another body-posture login may not remove this change point (the database skips the row)
        body2_project = open_as("ann_body2")
        with AnnotationService(body2_project, None) as body2:
            with pytest.raises(UserError, match="someone else marked it"):
                body2.toggle_change_point(track[k])
        body2_project.close()
        # undo of the mark by its author: a DELETE through its own policy
        for _ in range(3):
            body.undo()
        body.undo()
        with body_project.session() as s:
            assert s.scalar(select(ChangePoint.id)) is None
        body.redo()
    # plain SQL: the age login may not mark a posture change point, nor one as somebody else
    with psycopg.connect(login_url(PG_URL, logins["ann_age"], database), autocommit=True) as conn:
        me = conn.execute("SELECT portrait_me()").fetchone()[0]
        for attribute, who in (("body_posture", me), ("age", me + 100)):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("INSERT INTO change_points (track_id, attribute, frame_index, annotator_id, created_at)"
                             " SELECT track_id, %s, frame_index, %s, 0 FROM crops WHERE id = %s",
                             (attribute, who, track[1]))  # fmt: skip
        assert conn.execute("DELETE FROM change_points").rowcount == 0
    with body_project.session() as s:
        assert len(s.scalars(select(ChangePoint.id)).all()) == 1
    body_project.close()
