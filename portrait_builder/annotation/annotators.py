"""The annotators of a project: add, list, look up (who may label which attribute, with which role)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from portrait_builder.annotation.types import AnnotatorInfo
from portrait_builder.errors import UserError
from portrait_builder.store.models import ROLES, Annotator
from portrait_builder.store.project import Project
from portrait_builder.store.security import check_login_name, create_login


def annotator_info(row: Annotator) -> AnnotatorInfo:
    """The plain data of one annotator row."""
    return AnnotatorInfo(row.id, row.name, row.role, row.attribute, row.db_login, row.disabled_at is not None)


def check_team_store(project: Project, login: str) -> None:
    """Database logins exist only on PostgreSQL stores; a login name must be usable."""
    if project.is_sqlite:
        raise UserError(
            "database logins need a PostgreSQL store; a SQLite project is single-workstation "
            "(see docs/team.md to set up a team)"
        )
    check_login_name(login)


def add_annotator(
    project: Project,
    name: str,
    role: str = "annotator",
    attribute: str | None = None,
    *,
    db_login: str | None = None,
    password: str | None = None,
) -> AnnotatorInfo:
    """Register an annotator. Plain annotators need an assigned attribute; reviewers and maintainers may have one.

    ``db_login`` (PostgreSQL stores): also create that person's login role (with ``password``; an
    existing login is reused as it is) in the project's group role, in the same transaction.
    """
    name = (name or "").strip()
    if not name:
        raise UserError("annotator name must not be empty")
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; valid roles: {', '.join(ROLES)}")
    if attribute is not None:
        project.taxonomy.attribute(attribute)  # raises with the valid names
    elif role == "annotator":
        raise UserError(
            f"an annotator needs an assigned attribute (--attribute); valid: {', '.join(project.taxonomy.names)}"
        )

    def tx(s: Session) -> AnnotatorInfo:
        if s.scalar(select(Annotator.id).where(Annotator.name == name)) is not None:
            raise UserError(f"annotator {name!r} already exists")
        row = Annotator(name=name, role=role, attribute=attribute, db_login=db_login)
        s.add(row)
        s.flush()
        if db_login is not None:
            create_login(s.connection(), db_login, role, password)
        return annotator_info(row)

    if db_login is not None:
        check_team_store(project, db_login)
        project.record_identity_attribute()
    return project.run_write(tx)


def list_annotators(project: Project) -> list[AnnotatorInfo]:
    with project.session() as s:
        return [annotator_info(r) for r in s.scalars(select(Annotator).order_by(Annotator.name))]


def get_annotator(project: Project, name: str) -> AnnotatorInfo:
    with project.session() as s:
        row = s.scalar(select(Annotator).where(Annotator.name == name))
        if row is None:
            raise UserError(f"no annotator {name!r} in {project.root}; add one with `portrait annotators add`")
        return annotator_info(row)
