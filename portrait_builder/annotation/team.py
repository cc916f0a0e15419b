"""Who is labelling, on a team store: the annotator is the PostgreSQL login the connection uses.

On PostgreSQL the database enforces each role (revision 0003); this module maps a login to its
annotator row, treats a name given on the command line as a check that must agree, and disables or
re-enables a person without touching their labels. On SQLite (one workstation) the name decides.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from portrait_builder.annotation.annotators import annotator_info, check_team_store, get_annotator
from portrait_builder.annotation.types import AnnotatorInfo
from portrait_builder.errors import UserError
from portrait_builder.store.models import Annotator, Lease
from portrait_builder.store.project import Project
from portrait_builder.store.security import create_login, role_exists, set_login_enabled


def resolve_annotator(project: Project, name: str | None) -> AnnotatorInfo:
    """The annotator this connection labels as.

    SQLite: the named one. PostgreSQL: the row mapped to ``current_user``; ``name``, when given, must
    agree. A login with no row may act for a named annotator only when it bypasses row-level security
    anyway (a superuser or the owner of the store: scripts, imports, the demo).
    """
    login = project.login
    if login is None:
        if not name:
            raise UserError("name the annotator (--annotator NAME)")
        info = get_annotator(project, name)
    else:
        with project.refusals(), project.session() as s:
            row = s.scalar(select(Annotator).where(Annotator.db_login == login.name))
            info = annotator_info(row) if row is not None else None
        if info is not None:
            if name and name != info.name:
                raise UserError(
                    f"you are connected as login {login.name}, which is annotator {info.name!r}, not {name!r}"
                )
        elif login.privileged:
            if not name:
                raise UserError(
                    f"login {login.name} owns the store but is no annotator: name the annotator to act for (--annotator NAME)"
                )
            info = get_annotator(project, name)
        else:
            raise UserError(
                f"login {login.name} is not an annotator of {project.root}; a maintainer adds it with "
                f"`portrait annotators add {project.root} NAME --db-login {login.name}`"
            )
    if info.disabled:
        raise UserError(f"annotator {info.name!r} is disabled; a maintainer can re-enable them with `portrait annotators enable`")
    return info


def set_annotator_enabled(project: Project, name: str, enabled: bool) -> AnnotatorInfo:
    """Disable (or re-enable) an annotator: their labels and characters stay; a disabled annotator's
    leases go back to the queue and, on PostgreSQL, their login loses this project's group role."""

    def tx(s: Session) -> AnnotatorInfo:
        row = s.scalar(select(Annotator).where(Annotator.name == name))
        if row is None:
            raise UserError(f"no annotator {name!r} in {project.root}")
        row.disabled_at = None if enabled else time.time()
        if not enabled:
            s.execute(delete(Lease).where(Lease.annotator_id == row.id))
        if row.db_login and not project.is_sqlite:
            set_login_enabled(s.connection(), row.db_login, row.role, enabled)
        s.flush()
        return annotator_info(row)

    return project.run_write(tx)


def login_exists(project: Project, login: str) -> bool:
    """True when the server already has this login (a person on several projects keeps one login)."""
    with project.engine.connect() as conn:
        return role_exists(conn, login)


def attach_login(project: Project, name: str, login: str, password: str | None) -> AnnotatorInfo:
    """Give an existing annotator (e.g. from before revision 0003) a database login, created or reused."""
    check_team_store(project, login)

    def tx(s: Session) -> AnnotatorInfo:
        row = s.scalar(select(Annotator).where(Annotator.name == name))
        if row is None:
            raise UserError(f"no annotator {name!r} in {project.root}; add one with `portrait annotators add`")
        if row.db_login is not None:
            raise UserError(f"annotator {name!r} already has the login {row.db_login}")
        if s.scalar(select(Annotator.name).where(Annotator.db_login == login)) is not None:
            raise UserError(f"login {login} already belongs to another annotator of this project")
        row.db_login = login
        create_login(s.connection(), login, row.role, password)
        s.flush()
        return annotator_info(row)

    project.record_identity_attribute()
    return project.run_write(tx)
