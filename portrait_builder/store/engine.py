"""Engines for the project store: SQLite (WAL, busy timeout, foreign keys) or PostgreSQL by URL."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import QueuePool

from portrait_builder.errors import UserError
from portrait_builder.store.security import mask_url

log = logging.getLogger(__name__)
T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` with whichever driver is installed (psycopg 3 preferred)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"not a database URL: {mask_url(url)!r} (expected sqlite:///PATH or postgresql://...)") from None
    if parsed.drivername in ("postgresql", "postgres"):
        try:
            import psycopg  # noqa: F401

            parsed = parsed.set(drivername="postgresql+psycopg")
        except ImportError:
            parsed = parsed.set(drivername="postgresql+psycopg2")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise UserError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")
    return parsed.render_as_string(hide_password=False)


def _install_sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's "begin" event own transaction start (pysqlite's implicit BEGIN
        # cannot do BEGIN IMMEDIATE, which writers need to avoid deadlocking upgrades).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, *, check: bool = True) -> Engine:
    """Create an engine for ``url``; with ``check``, connect once so a bad URL fails here, in one line."""
    url = normalise_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        # A pool (not a connection per session): when the last connection to a WAL database closes,
        # SQLite checkpoints and deletes the WAL file, which cost ~5 ms per annotator click.
        # Connections move between threads one at a time, never concurrently.
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=4,
            max_overflow=16,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        _install_sqlite_pragmas(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
    if check:
        try:
            with engine.connect():
                pass
        except DBAPIError as exc:
            first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
            raise UserError(f"cannot open database {mask_url(url)}: {first}") from None
    return engine


def writer(engine: Engine) -> Engine:
    """An engine view whose transactions take the write lock up front (SQLite ``BEGIN IMMEDIATE``)."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(sqlite_immediate=True)
    return engine


def is_transient(exc: BaseException) -> bool:
    """True for errors that a retry can fix: SQLite busy/locked, PostgreSQL serialization/deadlock."""
    if not isinstance(exc, (OperationalError, DBAPIError)):
        return False
    text = str(getattr(exc, "orig", exc)).lower()
    code = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(getattr(exc, "orig", None), "pgcode", None)
    return "locked" in text or "busy" in text or code in ("40001", "40P01")


def retry(fn: Callable[[], T], *, attempts: int = 20, base_delay: float = 0.01) -> T:
    """Run ``fn`` (one whole transaction), retrying transient lock errors with jittered backoff."""
    for attempt in range(attempts):
        try:
            return fn()
        except DBAPIError as exc:
            if not is_transient(exc) or attempt == attempts - 1:
                raise
            delay = base_delay * (2 ** min(attempt, 6)) * (0.5 + random.random())
            log.debug("store busy (%s); retry %d in %.3fs", exc.__class__.__name__, attempt + 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
