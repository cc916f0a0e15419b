"""``portrait demo``: the main job end to end on built-in defaults."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on built-in synthetic data",
                       description="Run the main job end to end on built-in defaults, in a scratch folder.")
    p.add_argument("--out", default="demo-output", help="scratch folder (default: %(default)s); an earlier demo's folder is replaced")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from portrait_builder.demo import run_demo

    run_demo(args.out)
    return 0
