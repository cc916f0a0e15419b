"""Shared fixtures. Store tests run on SQLite always and on PostgreSQL when PORTRAIT_TEST_PG_URL is set
(``.ci/run`` starts a server and sets it)."""

from __future__ import annotations

import os
import uuid
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


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str | None:
    """A database URL for a new project: ``None`` (the default SQLite store) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    if not PG_URL:
        pytest.skip("PORTRAIT_TEST_PG_URL not set (no PostgreSQL server)")
    return _fresh_pg_database()


@pytest.fixture
def project(tmp_path, db_url):
    """An initialised, empty project on each backend."""
    from portrait_builder.store import Project

    proj = Project.init(tmp_path / "proj", db_url=db_url)
    yield proj
    proj.close()
