"""On a team store (PostgreSQL, each person their own login, set up as docs/team.md says) only maintainers
store predictions: an annotator's prelabel is refused in one line before the model runs, and the database
itself refuses the annotator's raw INSERT (SQLSTATE 42501), so the refusal does not rest on our check."""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

PG_URL = os.environ.get("PORTRAIT_TEST_PG_URL")
pytestmark = pytest.mark.slow  # trains the tiny checkpoint and sets up a team database (~30-60 s, shared box)


def _security_helpers():
    """tests/security/conftest.py's admin connection and login URLs (a conftest cannot be imported by name)."""
    path = Path(__file__).resolve().parents[1] / "security" / "conftest.py"
    name = "security_team_helpers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def team(tmp_path, monkeypatch):
    if not PG_URL:
        pytest.skip("PORTRAIT_TEST_PG_URL not set (no PostgreSQL server)")
    from release_project import build_project

    from portrait_builder.annotation import add_annotator
    from portrait_builder.store import Project
    from portrait_builder.store.security import group_role_names

    helpers = _security_helpers()
    suffix = uuid.uuid4().hex[:8]
    database, owner = f"pb_pre_{suffix}", f"pb_pre_owner_{suffix}"
    logins = {"ann": f"pb_pre_ann_{suffix}", "chief": f"pb_pre_chief_{suffix}"}
    roles = [*logins.values(), owner, *group_role_names(database).values()]
    with helpers.admin_connect() as conn:
        conn.execute(f'CREATE ROLE "{owner}" LOGIN CREATEROLE')
        conn.execute(f'CREATE DATABASE "{database}" OWNER "{owner}"')
    try:
        root = tmp_path / "project"
        project = Project.init(root, db_url=helpers.login_url(owner, database))
        build_project(project)
        add_annotator(project, "ann", "annotator", "body_posture", db_login=logins["ann"], password=f"pw-{suffix}")
        add_annotator(project, "chief", "maintainer", None, db_login=logins["chief"], password=f"pw-{suffix}c")
        project.close()

        def open_as(name):
            monkeypatch.setenv("PORTRAIT_DB_USER", logins[name])
            return Project.open(root)

        yield root, open_as, lambda name: helpers.login_url(logins[name], database)
    finally:
        helpers.drop_database_and_roles(database, roles)


def test_only_maintainers_store_predictions(team, tiny_checkpoint, capsys):
    import psycopg

    from portrait_builder.cli import main
    from portrait_builder.store import Crop, Prediction
    from portrait_builder.store.project import StorePermissionError
    from portrait_builder.train.prelabel import prelabel

    root, open_as, url = team
    annotator = open_as("ann")
    with pytest.raises(StorePermissionError, match="only maintainers run prelabel"):
        prelabel(annotator, tiny_checkpoint, progress=False)
    annotator.close()
    assert main(["prelabel", str(root), "--checkpoint", str(tiny_checkpoint), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("portrait: error: ") and "may not store predictions" in err[0]

    with psycopg.connect(url("ann"), autocommit=True) as conn:  # bypassing the library: the database refuses
        crop = conn.execute("SELECT min(id) FROM crops").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO predictions (crop_id, attribute, value, confidence, model, created_at) "
                         "VALUES (%s, 'body_posture', 'standing', 0.9, %s, 0)", (crop, "0" * 64))

    chief = open_as("chief")
    result = prelabel(chief, tiny_checkpoint, attributes=["body_posture"], progress=False)
    with chief.session() as s:
        stored = s.scalar(select(func.count()).select_from(Prediction))
        assert stored == result.stored["body_posture"] == 6
        assert s.scalar(select(func.count()).select_from(Crop)) == 34
    chief.close()
    annotator = open_as("ann")  # annotators read predictions (the views show them)
    with annotator.session() as s:
        assert s.scalar(select(func.count()).select_from(Prediction)) == 6
    annotator.close()
