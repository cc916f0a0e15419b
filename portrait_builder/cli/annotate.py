"""Annotation commands: ``annotate`` (opens the PySide6 app) and ``annotators add|list``."""

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
    p.add_argument("--annotator", required=True, metavar="NAME", help="who is labelling (see `portrait annotators list`)")
    p.add_argument("--attribute", metavar="ATTR", help="queue to work on (default: the annotator's assigned attribute)")
    p.add_argument("--review", action="store_true", help="open the review window (reviewers and maintainers)")
    p.add_argument("--second-opinion", action="store_true",
                   help="label crops someone else already labelled (their answer hidden), to measure agreement")
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("annotators", help="add or list annotators", description="Manage the project's annotators.")
    asub = p.add_subparsers(dest="annotators_command", metavar="ACTION", required=True)
    a = asub.add_parser("add", help="register an annotator", description="Register an annotator with a role and an attribute.")
    a.add_argument("project")
    a.add_argument("name")
    a.add_argument("--role", default="annotator", help="annotator | reviewer | maintainer (default: annotator)")
    a.add_argument("--attribute", metavar="ATTR", help="the one attribute this annotator labels (required for annotators)")
    a.set_defaults(func=cmd_annotators_add)
    a = asub.add_parser("list", help="list annotators", description="List the project's annotators.")
    a.add_argument("project")
    a.set_defaults(func=cmd_annotators_list)


def _check_display() -> None:
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if sys.platform.startswith("linux") and not platform and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("no display: set DISPLAY (or run under `xvfb-run`), or QT_QPA_PLATFORM=offscreen")


def cmd_annotate(args) -> int:
    from portrait_builder.annotation import AnnotationService
    from portrait_builder.store import Project

    project = Project.open(args.project)
    # checks name, role and attribute before any window opens
    service = AnnotationService(project, args.annotator, args.attribute, second_opinion=args.second_opinion)
    if args.review and not service.is_reviewer:
        raise UserError(f"{args.annotator} is an {service.annotator.role}; --review needs a reviewer or maintainer")
    _check_display()
    try:
        from annotator_gui.app import run_app
    except ImportError as exc:
        raise UserError(f"the annotation app needs PySide6 ({exc}); install it with `pip install PySide6`") from None
    return run_app(service, review=args.review)


def cmd_annotators_add(args) -> int:
    from portrait_builder.annotation import add_annotator
    from portrait_builder.store import Project

    info = add_annotator(Project.open(args.project), args.name, args.role, args.attribute)
    print(f"added {info.role} {info.name}" + (f" (attribute {info.attribute})" if info.attribute else ""))
    return 0


def cmd_annotators_list(args) -> int:
    from portrait_builder.annotation import list_annotators
    from portrait_builder.store import Project

    rows = list_annotators(Project.open(args.project))
    if not rows:
        print("no annotators yet; add one with `portrait annotators add PROJECT NAME --attribute ATTR`")
        return 0
    print(f"{'name':<20} {'role':<11} attribute")
    for r in rows:
        print(f"{r.name:<20} {r.role:<11} {r.attribute or '-'}")
    return 0
