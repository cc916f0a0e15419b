"""Cluster confirms and character attributes on a team store (PostgreSQL, each person their own login,
row-level security): the identity annotator's login confirms a candidate and its crops inherit the
character's age; the age annotator's login sets age on the character; neither can change what the
other's attribute decides, even with plain SQL."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from portrait_builder.testing.annotation_sample import crops_by_track, make_candidate
from portrait_builder.testing.team import login_url

PG_URL = os.environ.get("PORTRAIT_TEST_PG_URL")
# The `team` fixture's logins, and the tag naming its database and roles.
PEOPLE = [("ann_id", "annotator", "identity"), ("ann_age", "annotator", "age")]
TAG = "h10"

pytestmark = [pytest.mark.skipif(not PG_URL, reason="PORTRAIT_TEST_PG_URL not set (no PostgreSQL server)"),
              pytest.mark.slow]  # a database and its roles of its own


def test_confirm_and_character_attributes_as_each_login(team, open_as):
    import psycopg

    from portrait_builder.annotation import AnnotationService
    from portrait_builder.store import Project
    from portrait_builder.store.models import Candidate, CurrentLabel, Identity, Label

    root, database, logins = team

    owner = Project.open(root)  # the maintainer login (owner) runs `portrait characters`: it writes the cluster
    tracks = crops_by_track(owner)
    t = sorted(tracks)
    cand = make_candidate(owner, t[:2])
    owner.close()

    ident_project = open_as("ann_id")
    with AnnotationService(ident_project, None) as ident:
        ident.confirm_proposal(tracks[t[0]][0], gender="female")
    with ident_project.session() as s:
        c = s.get(Candidate, cand)
        hero_id = c.identity_id
        assert hero_id is not None and c.confirmed_by is not None
        assert s.scalar(select(CurrentLabel.value).where(CurrentLabel.crop_id == tracks[t[1]][-1],
                                                         CurrentLabel.attribute == "identity")) == str(hero_id)

    age_project = open_as("ann_age")
    with AnnotationService(age_project, None) as age:
        age.set_character_attribute(hero_id, "age", "elderly")
    with age_project.session() as s:
        assert s.get(Identity, hero_id).attributes == {"age": "elderly"}
        assert s.scalar(select(CurrentLabel.value).where(CurrentLabel.crop_id == tracks[t[1]][0],
                                                         CurrentLabel.attribute == "age")) == "elderly"

    # a crop joining the character later inherits its age, written under the identity login; undo too
    late = tracks[t[2]][0]
    with AnnotationService(ident_project, None) as ident:
        ident.assign_identity(late, hero_id)
        with ident_project.session() as s:
            row = s.execute(select(CurrentLabel.value, Label.provenance, Label.annotator_id)
                            .join(Label, Label.id == CurrentLabel.label_id)
                            .where(CurrentLabel.crop_id == late, CurrentLabel.attribute == "age")).one()  # fmt: skip
            assert (row.value, row.provenance, row.annotator_id) == ("elderly", "inherited", ident.annotator.id)
        ident.undo()
    with ident_project.session() as s:
        assert s.scalar(select(CurrentLabel.value).where(CurrentLabel.crop_id == late,
                                                         CurrentLabel.attribute == "age")) is None

    # plain SQL: the identity login cannot set age on the character, the age login cannot rename it
    # (the database skips both rows); a clicked age label by the identity login is refused
    for name, sql in (("ann_id", "UPDATE identities SET attributes = '{\"age\": \"child\"}' WHERE id = %s"),
                      ("ann_age", "UPDATE identities SET name = 'Mallory' WHERE id = %s")):  # fmt: skip
        with psycopg.connect(login_url(PG_URL, logins[name], database), autocommit=True) as conn:
            assert conn.execute(sql, (hero_id,)).rowcount == 0
    with psycopg.connect(login_url(PG_URL, logins["ann_id"], database), autocommit=True) as conn:
        me = conn.execute("SELECT portrait_me()").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO labels (crop_id, attribute, value, annotator_id, source, created_at, provenance)"
                         " VALUES (%s, 'age', 'child', %s, 'app', 0, 'clicked')", (late, me))
    with age_project.session() as s:
        hero = s.get(Identity, hero_id)
        assert hero.attributes == {"age": "elderly"} and hero.name is None
    ident_project.close()
    age_project.close()
