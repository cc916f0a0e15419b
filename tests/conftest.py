"""Shared fixtures. Store tests run on SQLite always and on PostgreSQL when PORTRAIT_TEST_PG_URL is set
(``.ci/run`` starts a server and sets it)."""

from __future__ import annotations

import os
import uuid
import warnings
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PG_URL = os.environ.get("PORTRAIT_TEST_PG_URL")


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def _fresh_pg_database() -> str:
    """Create an empty database on the test server and return its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from portrait_builder.store.engine import normalise_url

    admin_url = make_url(normalise_url(PG_URL))
    name = f"pb_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(url: str) -> None:
    """Drop a test database and the project group roles revision 0003 created for it (roles are
    server-wide: without this, every test would leave three behind)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from portrait_builder.store.engine import normalise_url
    from portrait_builder.store.security import group_role_names

    name = make_url(url).database
    admin = create_engine(make_url(normalise_url(PG_URL)), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            for role in group_role_names(name).values():
                conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
    except SQLAlchemyError as exc:  # a role still in use elsewhere only leaves a leftover on a throwaway server
        warnings.warn(f"could not drop test database {name}: {exc}", stacklevel=1)
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A database URL for a new project: ``None`` (the default SQLite store) or a fresh PostgreSQL database,
    dropped after the test."""
    if request.param == "sqlite":
        yield None
        return
    if not PG_URL:
        pytest.skip("PORTRAIT_TEST_PG_URL not set (no PostgreSQL server)")
    url = _fresh_pg_database()
    yield url
    _drop_pg_database(url)


@pytest.fixture
def project(tmp_path, db_url):
    """An initialised, empty project on each backend."""
    from portrait_builder.store import Project

    proj = Project.init(tmp_path / "proj", db_url=db_url)
    yield proj
    proj.close()
