"""A project with real crops (MOT17 ground-truth persons when ../shared/data is present, else rendered)
and one annotator per role, on SQLite and PostgreSQL (via the shared `project` fixture); a team store
(PostgreSQL, one login per person) for the modules that declare its people."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

MOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "mot" / "MOT17-mini" / "train"


def mot_dirs() -> list[Path]:
    return [MOT / "MOT17-02-FRCNN", MOT / "MOT17-05-FRCNN"]


@pytest.fixture
def annotated(project):
    """(project, crop ids) with annotators ann_id (identity), ann_age, ann_age2 (age), ann_expr (expression), rev, boss."""
    from portrait_builder.annotation import add_annotator
    from portrait_builder.testing.annotation_sample import populate_sample

    crop_ids = populate_sample(project, mot_dirs(), max_tracks=5)
    add_annotator(project, "ann_id", "annotator", "identity")
    add_annotator(project, "ann_age", "annotator", "age")
    add_annotator(project, "ann_age2", "annotator", "age")
    add_annotator(project, "ann_expr", "annotator", "expression")
    add_annotator(project, "rev", "reviewer")
    add_annotator(project, "boss", "maintainer", "identity")
    return project, crop_ids


@pytest.fixture(scope="module")
def team(request, tmp_path_factory):
    """(project root, database, {name: login}) of a store set up as docs/team.md says: a maintainer login
    owning the database, one login per person of the module's ``PEOPLE`` ((name, role, attribute) rows),
    database and roles named after its ``TAG``."""
    from portrait_builder.testing.team import team_store

    pg_url = os.environ.get("PORTRAIT_TEST_PG_URL")
    if not pg_url:
        pytest.skip("PORTRAIT_TEST_PG_URL not set (no PostgreSQL server)")
    root = tmp_path_factory.mktemp("team") / "project"
    with team_store(pg_url, root, request.module.PEOPLE, tag=request.module.TAG, mot_dir=mot_dirs()[0]) as t:
        yield t


@pytest.fixture
def open_as(team, monkeypatch):
    """Open the team project as one person of ``PEOPLE`` (PORTRAIT_DB_USER, as on their machine)."""
    from portrait_builder.store import Project

    root, _, logins = team

    def _open(name):
        monkeypatch.setenv("PORTRAIT_DB_USER", logins[name])
        return Project.open(root)

    return _open
