"""Team security on PostgreSQL: URLs without secrets, one login per person, the project's group roles.

Revision 0003 creates three group roles per project database (annotator, reviewer, maintainer),
row-level security policies and column privileges; this module creates, disables and maps the
people's login roles, and says who a connection is. SQLite stores have none of this: they are
single-workstation (the project folder is readable by its owner only).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from portrait_builder.errors import UserError
from portrait_builder.store.models import ROLES

#: Settings key under which revision 0003 records the names of this database's group roles.
GROUP_ROLES_SETTING = "db_group_roles"
#: Settings key naming the taxonomy's identity attribute (the policies let its annotators create characters).
IDENTITY_ATTRIBUTE_SETTING = "identity_attribute"
INSUFFICIENT_PRIVILEGE = "42501"  # SQLSTATE of "permission denied" and of a row-level security refusal
MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names
LOGIN_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
WHERE_PASSWORDS_GO = (
    "libpq reads it from your password file (~/.pgpass, or the file PGPASSFILE names), "
    "a service file (~/.pg_service.conf with PGSERVICE) or the PGPASSWORD environment variable"
)


# -- URLs ------------------------------------------------------------------------------------------
def url_password(url: str) -> str | None:
    """The password a database URL carries (``user:PASSWORD@`` or ``?password=``), else None."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.password:
        return str(parsed.password)
    query = parsed.query.get("password")
    if query:
        return query if isinstance(query, str) else query[0]
    return None


def strip_password(url: str) -> str:
    """``url`` without its password (in the user part and in the query)."""
    parsed = make_url(url).difference_update_query(["password"])
    parsed = parsed._replace(password=None)  # URL.set() treats None as "unchanged"
    return parsed.render_as_string(hide_password=False)


def mask_url(url: str) -> str:
    """``url`` as it may be shown: any password replaced by ``***``."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        # not a URL SQLAlchemy parses: hide whatever sits between "://user:" and "@"
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def refuse_password(url: str, where: str) -> None:
    """Raise :class:`UserError` when ``url`` carries a password (it would be stored in ``where``)."""
    if url_password(url):
        raise UserError(
            f"the database URL holds a password, which would be stored in {where} for everyone who has the "
            f"project folder: give it without the password ({mask_url(url)}); {WHERE_PASSWORDS_GO}"
        )


# -- group roles -----------------------------------------------------------------------------------
def group_role_names(database: str) -> dict[str, str]:
    """The group role of each project role for a database: ``portrait_<db>_<role>``.

    Per database, so two projects on one server never share rights; a long database name is
    replaced by a digest so the name stays within PostgreSQL's 63 characters.
    """
    stem = re.sub(r"[^a-z0-9_]", "_", database.lower())
    if len(f"portrait_{stem}_maintainer") > MAX_IDENTIFIER:
        stem = hashlib.sha256(database.encode()).hexdigest()[:16]
    return {role: f"portrait_{stem}_{role}" for role in ROLES}


def group_roles(conn: Connection) -> dict[str, str]:
    """The group roles revision 0003 recorded for this database (UserError when it has none)."""
    value = conn.execute(text("SELECT value FROM settings WHERE key = :k"), {"k": GROUP_ROLES_SETTING}).scalar()
    if not value:
        raise UserError("this store has no group roles (its schema predates revision 0003); run `portrait upgrade`")
    return dict(value)


@dataclass(frozen=True)
class Login:
    """Who a PostgreSQL connection is. ``privileged``: a superuser or the owner of the store's tables
    (they bypass row-level security, so they may act for any annotator, e.g. in scripts)."""

    name: str
    privileged: bool


def current_login(conn: Connection) -> Login:
    row = conn.execute(
        text(
            "SELECT current_user, r.rolsuper OR pg_has_role(current_user, c.relowner, 'USAGE') "
            "FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = to_regclass('labels')"
        )
    ).first()
    if row is None:  # no labels table: not a project store
        name = conn.execute(text("SELECT current_user")).scalar_one()
        return Login(name, False)
    return Login(row[0], bool(row[1]))


def check_login_name(login: str) -> str:
    if not LOGIN_RE.match(login):
        raise UserError(
            f"{login!r} is not a usable database login: lower-case letters, digits and _ "
            "(at most 63, not starting with a digit); pass one with --login"
        )
    return login


def _quote_ident(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def _encrypt_password(conn: Connection, login: str, password: str) -> str:
    """The SCRAM verifier of ``password``, computed here so the password itself never reaches the
    server (nor its statement log), as psql's ``\\password`` does."""
    # The store connects through psycopg 3 (normalise_url picks it; psycopg2 is not a dependency).
    pgconn = conn.connection.driver_connection.pgconn
    return pgconn.encrypt_password(password.encode(), login.encode(), b"scram-sha-256").decode()


def role_exists(conn: Connection, name: str) -> bool:
    return conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name}).first() is not None


def create_login(conn: Connection, login: str, role: str, password: str | None) -> bool:
    """Create ``login`` (or reuse an existing one: a person may work on several projects) and make it
    a member of this project's group role for ``role``. Returns True when the login was created.

    Runs inside the caller's transaction, which also writes the annotator row.
    """
    check_login_name(login)
    groups = group_roles(conn)
    ident = _quote_ident(conn, login)
    created = False
    if not role_exists(conn, login):
        if not password:
            raise UserError(f"login {login} does not exist yet: it needs a password")
        verifier = _encrypt_password(conn, login, password)
        literal = "'" + verifier.replace("'", "''") + "'"
        conn.exec_driver_sql(f"CREATE ROLE {ident} LOGIN PASSWORD {literal}")
        created = True
    for other in ROLES:  # one project role at a time
        if other != role:
            conn.exec_driver_sql(f"REVOKE {_quote_ident(conn, groups[other])} FROM {ident}")
    conn.exec_driver_sql(f"GRANT {_quote_ident(conn, groups[role])} TO {ident}")
    return created


def set_login_enabled(conn: Connection, login: str, role: str, enabled: bool) -> None:
    """Grant (enabled) or revoke (disabled) the login's membership of this project's group role.

    Disabling is per project: the login keeps working elsewhere, here it can no longer read or write,
    and everything it labelled stays.
    """
    groups = group_roles(conn)
    if not role_exists(conn, login):
        if enabled:
            raise UserError(f"login {login} does not exist on the server")
        return
    verb = "GRANT {g} TO {u}" if enabled else "REVOKE {g} FROM {u}"
    groups_to_change = [groups[role]] if enabled else list(groups.values())
    for g in groups_to_change:
        conn.exec_driver_sql(verb.format(g=_quote_ident(conn, g), u=_quote_ident(conn, login)))


def refusal_message(exc: DBAPIError, login: str | None) -> str | None:
    """One line for a privilege refusal (``permission denied``, a row-level security policy), else None."""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code != INSUFFICIENT_PRIVILEGE:
        return None
    first = str(orig).strip().splitlines()[0] if orig is not None else "permission denied"
    who = f" for login {login}" if login else ""
    return f"the database refused this{who}: {first} (ask a maintainer if you need this right)"


def grant_writer_columns(conn: Connection, table: str, columns: list[str], privilege: str = "INSERT") -> None:
    """For a later revision that adds columns annotators and reviewers set (e.g. a label's provenance):
    grant them on those columns. Revision 0003 grants column by column, so without this their writes
    that name the new column are refused. No-op on SQLite.
    """
    if conn.dialect.name != "postgresql":
        return
    groups = group_roles(conn)
    cols = ", ".join(_quote_ident(conn, c) for c in columns)
    writers = ", ".join(_quote_ident(conn, groups[r]) for r in ("annotator", "reviewer"))
    conn.exec_driver_sql(f"GRANT {privilege} ({cols}) ON {_quote_ident(conn, table)} TO {writers}")
