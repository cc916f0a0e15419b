"""A team store on the test PostgreSQL server, set up the way docs/team.md says: a maintainer login
that owns the database (not a superuser), and one login per person made by `portrait annotators add
--db-login`. Database and role names are unique per run (the server is shared) and are dropped after."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_URL = os.environ.get("PORTRAIT_TEST_PG_URL")
MOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "mot" / "MOT17-mini" / "train" / "MOT17-02-FRCNN"


def admin_connect(database: str | None = None):
    """A psycopg connection as the server's administrator (autocommit)."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(PG_URL)
    if database:
        url = url.set(database=database)
    return psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True)


def login_url(login: str, database: str) -> str:
    """The URL a person uses: their own login, no password (libpq finds it in their ~/.pgpass)."""
    from sqlalchemy.engine import make_url

    return make_url(PG_URL).set(username=login, password=None, database=database, drivername="postgresql").render_as_string(
        hide_password=False
    )


def drop_database_and_roles(database: str, roles: list[str]) -> None:
    with admin_connect() as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')  # ends sessions still closing
        for role in roles:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@dataclass
class Team:
    root: Path
    database: str
    owner: str  # the maintainer login that created the project (owns the tables)
    logins: dict[str, str]  # annotator name -> login
    ids: dict[str, int]  # annotator name -> annotators.id
    crop_ids: list[int]
    roles: list[str] = field(default_factory=list)  # every role to drop afterwards

    def url(self, name: str) -> str:
        return login_url(self.logins[name], self.database)

    def connect(self, name: str):
        """A raw psycopg connection as that person's login (autocommit): psql without the app."""
        import psycopg

        return psycopg.connect(self.url(name), autocommit=True)


PEOPLE = [  # name, role, attribute
    ("ann_age", "annotator", "age"),
    ("ann_id", "annotator", "identity"),
    ("rev", "reviewer", None),
    ("chief", "maintainer", None),
]


class PgHelpers:
    """The helpers above, for tests (test modules cannot import a conftest)."""

    url = PG_URL
    admin_connect = staticmethod(admin_connect)
    login_url = staticmethod(login_url)
    drop_database_and_roles = staticmethod(drop_database_and_roles)


@pytest.fixture
def pg() -> type[PgHelpers]:
    if not PG_URL:
        pytest.skip("PORTRAIT_TEST_PG_URL not set (no PostgreSQL server)")
    return PgHelpers


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> Iterator[Team]:
    if not PG_URL:
        pytest.skip("PORTRAIT_TEST_PG_URL not set (no PostgreSQL server)")
    from portrait_builder.annotation import add_annotator
    from portrait_builder.store import Project
    from portrait_builder.store.security import group_role_names
    from portrait_builder.testing.annotation_sample import populate_sample

    suffix = uuid.uuid4().hex[:8]
    database, owner = f"pb_sec_{suffix}", f"pb_sec_owner_{suffix}"
    logins = {name: f"pb_sec_{name}_{suffix}" for name, _, _ in PEOPLE}
    roles = [*logins.values(), owner, *group_role_names(database).values()]
    with admin_connect() as conn:  # what the server administrator does once (docs/team.md, step 1)
        conn.execute(f'CREATE ROLE "{owner}" LOGIN CREATEROLE')
        conn.execute(f'CREATE DATABASE "{database}" OWNER "{owner}"')
    try:
        root = tmp_path_factory.mktemp("team") / "project"
        project = Project.init(root, db_url=login_url(owner, database))
        crop_ids = populate_sample(project, [MOT] if MOT.is_dir() else [], max_tracks=3)
        ids = {}
        for name, role, attribute in PEOPLE:
            info = add_annotator(project, name, role, attribute, db_login=logins[name], password=f"pw-{suffix}-{name}")
            ids[name] = info.id
        project.close()
        yield Team(root, database, owner, logins, ids, crop_ids, roles)
    finally:
        drop_database_and_roles(database, roles)


@pytest.fixture
def as_login(team, monkeypatch):
    """Open the team project as one person (PORTRAIT_DB_USER, as on that person's machine): a name of
    ``PEOPLE`` opens as their login, any other name as that login itself (the owner)."""
    from portrait_builder.store import Project

    opened = []

    def _open(name):
        monkeypatch.setenv("PORTRAIT_DB_USER", team.logins.get(name, name))
        project = Project.open(team.root)
        opened.append(project)
        return project

    yield _open
    for p in opened:
        p.close()
