"""Alembic migrations of the store, configured in code (no alembic.ini to lose).

Opening a store only needs two revision ids (the store's and the newest this version ships), which
are read without importing Alembic: Alembic and the revision scripts it loads were about 0.4 s of
every ``portrait status``. Alembic itself runs only for :func:`upgrade` and :func:`downgrade`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*=\s*(?:['\"]([^'\"]*)['\"]|None)\s*$", re.MULTILINE)


def _config():
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest revision under ``migrations/versions``: the one no other revision names as its parent.

    Read from the scripts' ``revision = "..."`` / ``down_revision = "..."`` lines; one linear history
    is assumed (a branch, or a script that does not parse, raises: tests/store checks this against
    Alembic's own answer).
    """
    revisions: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        found = dict((k, v or None) for k, v in _ASSIGNMENT.findall(path.read_text(encoding="utf-8")))
        if "revision" not in found or not found["revision"]:
            raise RuntimeError(f"migration script {path.name} has no revision id")
        revisions[found["revision"]] = found.get("down_revision")
    heads = set(revisions) - set(revisions.values())
    if len(heads) != 1:
        raise RuntimeError(f"migration scripts have {len(heads)} heads ({', '.join(sorted(heads))}); expected one")
    return heads.pop()


def current_revision(bind: Engine | Connection) -> str | None:
    """The store's revision (None before any); ``bind`` an engine, or a connection to read it on."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return current_revision(conn)
    if not inspect(bind).has_table(VERSION_TABLE):
        return None
    return bind.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
