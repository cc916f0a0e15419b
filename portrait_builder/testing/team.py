"""A team store for tests: PostgreSQL, a maintainer login owning the database, one login per person,
set up as docs/team.md says; dropped with every role it created afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def admin_connection(pg_url: str, database: str | None = None):
    """An autocommit psycopg connection as the server's administrator (the test server's URL)."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(pg_url).set(drivername="postgresql")
    if database:
        url = url.set(database=database)
    return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)


def login_url(pg_url: str, login: str, database: str) -> str:
    """The URL a person's login connects with (no password in it: the server trusts the test login)."""
    from sqlalchemy.engine import make_url

    return make_url(pg_url).set(username=login, password=None, database=database,
                                drivername="postgresql").render_as_string(hide_password=False)  # fmt: skip


@contextmanager
def team_store(pg_url: str, root: Path, people: Sequence[tuple[str, str, str | None]], *, tag: str,
               mot_dir: Path | None = None) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """Yield ``(project root, database, {name: login})`` for ``people`` = (name, role, attribute) rows,
    with sample crops (MOT17 when ``mot_dir`` exists, rendered otherwise)."""
    from portrait_builder.annotation import add_annotator
    from portrait_builder.store import Project
    from portrait_builder.store.security import group_role_names
    from portrait_builder.testing.annotation_sample import populate_sample

    suffix = uuid.uuid4().hex[:8]
    database, owner = f"pb_{tag}_{suffix}", f"pb_{tag}_owner_{suffix}"
    logins = {name: f"pb_{tag}_{name}_{suffix}" for name, _, _ in people}
    roles = [*logins.values(), owner, *group_role_names(database).values()]
    with admin_connection(pg_url) as conn:
        conn.execute(f'CREATE ROLE "{owner}" LOGIN CREATEROLE')
        conn.execute(f'CREATE DATABASE "{database}" OWNER "{owner}"')
    try:
        project = Project.init(root, db_url=login_url(pg_url, owner, database))
        populate_sample(project, [mot_dir] if mot_dir is not None and mot_dir.is_dir() else [], max_tracks=3)
        for name, role, attribute in people:
            add_annotator(project, name, role, attribute, db_login=logins[name], password=f"pw-{suffix}-{name}")
        project.close()
        yield root, database, logins
    finally:
        with admin_connection(pg_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            for role in roles:
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')
