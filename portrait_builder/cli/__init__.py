"""The ``portrait`` command: one entry point, one module per group of subcommands.

Every module in this package (but this one) has ``register(subparsers)``, found by name, so adding
a command group means adding a module; heavy imports happen inside the
command functions so ``portrait --help`` stays fast. User mistakes raise
:class:`~portrait_builder.errors.UserError` and come out as one line on stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from portrait_builder import __version__
from portrait_builder.errors import UserError

# The order `portrait --help` lists command groups in: the flow of the work. Modules not named here follow.
HELP_ORDER = ["project", "ingest", "jde", "characters", "annotate", "identities", "dataset", "release", "labels", "baseline", "prelabel",
              "demo"]


def command_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    rank = {name: i for i, name in enumerate(HELP_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="portrait",
        description="Portrait Builder: turn movies into labelled person datasets.",
    )
    parser.add_argument("--version", action="version", version=f"portrait-builder {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_modules():
        importlib.import_module(f"portrait_builder.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"portrait: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("portrait: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        # The app-only install ("portrait-builder[app]") has no pipeline packages (torch, OpenCV, ...).
        if not exc.name or exc.name.split(".")[0] in ("portrait_builder", "annotator_gui"):
            raise
        print(f"portrait: error: `portrait {args.command}` needs the full install, which has {exc.name!r}: "
              f"pip install \"portrait-builder[all]\"", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
