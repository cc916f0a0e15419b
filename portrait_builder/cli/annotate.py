"""Annotation commands: ``annotate`` (opens the PySide6 app) and ``annotators add|list|disable|enable``."""

from __future__ import annotations

import argparse
import os
import sys

from portrait_builder.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "annotate",
        help="open the annotation app for one annotator",
        description="Open the desktop annotation app (PySide6) on the annotator's attribute queue.",
    )
    p.add_argument("project")
    p.add_argument("--annotator", metavar="NAME",
                   help="who is labelling (see `portrait annotators list`); on a PostgreSQL store the annotator is "
                   "the database login you connect with, and this name is only checked against it")
    p.add_argument("--attribute", metavar="ATTR", help="queue to work on (default: the annotator's assigned attribute)")
    p.add_argument("--review", action="store_true", help="open the review window (reviewers and maintainers)")
    p.add_argument("--second-opinion", action="store_true",
                   help="label crops someone else already labelled (their answer hidden), to measure agreement")
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("annotators", help="add, list, disable or enable annotators",
                       description="Manage the project's annotators (and, on PostgreSQL, their database logins).")
    asub = p.add_subparsers(dest="annotators_command", metavar="ACTION", required=True)
    a = asub.add_parser("add", help="register an annotator", description="Register an annotator with a role and an attribute.")
    a.add_argument("project")
    a.add_argument("name")
    a.add_argument("--role", default="annotator", help="annotator | reviewer | maintainer (default: annotator)")
    a.add_argument("--attribute", metavar="ATTR", help="the one attribute this annotator labels (required for annotators)")
    a.add_argument("--db-login", action="store_true",
                   help="PostgreSQL: also create the person's own database login (run by a maintainer); the database "
                   "then enforces the role. The password is typed at a prompt, read with --password-stdin or generated")
    a.add_argument("--login", metavar="LOGIN", help="name of the database login (default: NAME in lower case)")
    how = a.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help="read the new login's password from the first line of stdin")
    how.add_argument("--generate-password", action="store_true", help="generate the password and print it once")
    a.set_defaults(func=cmd_annotators_add)
    a = asub.add_parser("login", help="give an existing annotator a database login (PostgreSQL)",
                        description="Create (or reuse) a database login for an annotator added without one, e.g. "
                        "before the store was upgraded to database-enforced roles.")
    a.add_argument("project")
    a.add_argument("name")
    a.add_argument("--login", metavar="LOGIN", help="name of the database login (default: NAME in lower case)")
    how = a.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help="read the new login's password from the first line of stdin")
    how.add_argument("--generate-password", action="store_true", help="generate the password and print it once")
    a.set_defaults(func=cmd_annotators_login)
    a = asub.add_parser("list", help="list annotators", description="List the project's annotators.")
    a.add_argument("project")
    a.set_defaults(func=cmd_annotators_list)
    for action, text in (("disable", "disable an annotator (their labels stay; on PostgreSQL their login loses "
                                     "this project's rights; their leased crops go back to the queue)"),
                         ("enable", "re-enable a disabled annotator")):
        a = asub.add_parser(action, help=text.split(" (")[0], description=text[0].upper() + text[1:] + ".")
        a.add_argument("project")
        a.add_argument("name")
        a.set_defaults(func=cmd_annotators_enable, enabled=action == "enable")


def _check_display() -> None:
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if sys.platform.startswith("linux") and not platform and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("no display: set DISPLAY (or run under `xvfb-run`), or QT_QPA_PLATFORM=offscreen")


def cmd_annotate(args) -> int:
    from portrait_builder.annotation import AnnotationService
    from portrait_builder.store import Project

    project = Project.open(args.project)
    project.check_crop_root()  # an unmounted shared drive is one line here, not grey crops in the app
    # checks login, name, role and attribute before any window opens
    service = AnnotationService(project, args.annotator, args.attribute, second_opinion=args.second_opinion)
    if args.review and not service.is_reviewer:
        raise UserError(f"{service.annotator.name} is an {service.annotator.role}; --review needs a reviewer or maintainer")
    _check_display()
    try:
        from annotator_gui.app import run_app
    except ImportError as exc:
        raise UserError(f"the annotation app needs PySide6 ({exc}); install it with `pip install PySide6`") from None
    return run_app(service, review=args.review)


def _new_password(args, login: str) -> tuple[str, bool]:
    """(password, generated) for a new login: never an argument (it would sit in shell history)."""
    import getpass
    import secrets

    if args.generate_password:
        return secrets.token_urlsafe(18), True
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for new login {login}: ")
        if getpass.getpass("again: ") != password:
            raise UserError("the two passwords differ")
    else:
        raise UserError("no terminal to type the new login's password: use --password-stdin or --generate-password")
    if len(password) < 8:
        raise UserError("the password needs at least 8 characters")
    return password, False


def cmd_annotators_add(args) -> int:
    from portrait_builder.annotation import add_annotator
    from portrait_builder.annotation.team import check_team_store, login_exists
    from portrait_builder.store import Project

    project = Project.open(args.project)
    login = password = None
    generated = False
    if args.db_login or args.login:
        login = args.login or args.name.strip().lower()
        check_team_store(project, login)
        if not login_exists(project, login):
            password, generated = _new_password(args, login)
    elif args.password_stdin or args.generate_password:
        raise UserError("a password is only for a database login: add --db-login")
    info = add_annotator(project, args.name, args.role, args.attribute, db_login=login, password=password)
    print(f"added {info.role} {info.name}" + (f" (attribute {info.attribute})" if info.attribute else ""))
    if login:
        _print_login(login, password, generated)
    return 0


def _print_login(login: str, password: str | None, generated: bool) -> None:
    state = "created" if password else "existing login, password unchanged"
    print(f"database login {login} ({state})")
    if generated:
        # shown once, never stored: the person puts it in their own password file (docs/team.md)
        print(f"password for {login} (shown only now): {password}")


def cmd_annotators_login(args) -> int:
    from portrait_builder.annotation.team import attach_login, check_team_store, login_exists
    from portrait_builder.store import Project

    project = Project.open(args.project)
    login = args.login or args.name.strip().lower()
    check_team_store(project, login)
    password, generated = (None, False) if login_exists(project, login) else _new_password(args, login)
    info = attach_login(project, args.name, login, password)
    print(f"{info.name} ({info.role}) now connects as {login}")
    _print_login(login, password, generated)
    return 0


def cmd_annotators_enable(args) -> int:
    from portrait_builder.annotation.team import set_annotator_enabled
    from portrait_builder.store import Project

    info = set_annotator_enabled(Project.open(args.project), args.name, args.enabled)
    what = "enabled" if args.enabled else "disabled (labels kept)"
    print(f"{info.name} {what}" + (f"; login {info.db_login}" if info.db_login else ""))
    return 0


def cmd_annotators_list(args) -> int:
    from portrait_builder.annotation import list_annotators
    from portrait_builder.store import Project

    rows = list_annotators(Project.open(args.project))
    if not rows:
        print("no annotators yet; add one with `portrait annotators add PROJECT NAME --attribute ATTR`")
        return 0
    print(f"{'name':<20} {'role':<11} {'attribute':<14} {'login':<16} state")
    for r in rows:
        state = "disabled" if r.disabled else "active"
        print(f"{r.name:<20} {r.role:<11} {r.attribute or '-':<14} {r.db_login or '-':<16} {state}")
    return 0
