"""Project commands: ``init``, ``upgrade``, ``status``."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="create a project (config, store, crops/)", description="Create a project directory.")
    p.add_argument("project", help="project directory to create")
    p.add_argument("--db", metavar="URL", help="database URL (default: sqlite store inside the project, readable by you "
                   "only); postgresql://HOST/DB for teams, without a password (libpq reads it from ~/.pgpass)")
    p.add_argument("--taxonomy", metavar="FILE", help="label taxonomy YAML (default: the shipped Portrait250K taxonomy)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("upgrade", help="migrate the store to this version's schema", description="Run the store's Alembic migrations up to head.")
    p.add_argument("project")
    p.set_defaults(func=cmd_upgrade)

    p = sub.add_parser("status", help="counts of videos, tracks, crops, identities and labels", description="Print what the project holds.")
    p.add_argument("project")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_status)


def cmd_init(args) -> int:
    from portrait_builder.store import Project

    project = Project.init(args.project, db_url=args.db, taxonomy=args.taxonomy)
    print(f"created project {project.root} ({project.engine.dialect.name} store, taxonomy {project.taxonomy.name})")
    return 0


def cmd_upgrade(args) -> int:
    from portrait_builder.store import Project

    project = Project.open(args.project, require_current=False)
    before, after = project.upgrade()
    print(f"store at {after}" + ("" if before == after else f" (was {before or 'empty'})"))
    return 0


def cmd_status(args) -> int:
    from portrait_builder.store import Project

    status = Project.open(args.project).status()
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    print(f"project    {status['project']}")
    login = f", login {status['login']}" if status.get("login") else ""
    print(f"database   {status['database']} (schema {status['schema_revision']}{login})")
    videos = ", ".join(f"{k} {v}" for k, v in sorted(status["videos_by_status"].items()))
    print(f"videos     {status['videos']}" + (f" ({videos})" if videos else ""))
    for key in ("tracks", "crops", "identities"):
        print(f"{key:<10} {status[key]}")
    print()
    print(f"{'attribute':<14} {'labelled':>9} {'unlabelled':>11}")
    for name, row in status["attributes"].items():
        print(f"{name:<14} {row['labelled']:>9} {row['unlabelled']:>11}")
    return 0
