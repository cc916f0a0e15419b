"""``portrait release``: write a versioned release, ``verify`` one, ``diff`` two.

Three forms share one command (argparse cannot mix a positional PROJECT with sub-commands):
``portrait release PROJECT --version X.Y.Z --out DIR``, ``portrait release verify DIR``,
``portrait release diff A B``. ``--help`` after ``verify`` or ``diff`` prints that form's own help.
"""

from __future__ import annotations

import argparse
import json
import sys

USAGE = """portrait release PROJECT --version X.Y.Z --out DIR [--split NAME] [--k K] [--link MODE]
       portrait release verify DIR
       portrait release diff A B [--json]"""

DESCRIPTION = """Write an immutable, versioned dataset release (Market-1501 folders, annotations.parquet,
manifest.json with sha256 of every file, DATASHEET.md, stats, captions.jsonl, qa.jsonl), verify one,
or compare two. Writing needs pHashes, groups and a split: run `portrait hash`, `portrait groups` and
`portrait split` first (the release names the missing step)."""


def _form_parsers() -> dict[str, argparse.ArgumentParser]:
    """Help-only parsers of the verify and diff forms (the shared parser does the parsing)."""
    verify = argparse.ArgumentParser(
        prog="portrait release verify", add_help=False,
        description="Re-check a release: the sha256 of every file against manifest.json, the schemas of "
                    "manifest.json and annotations.parquet, the Market-1501 file names and the split "
                    "invariants. Prints every problem and exits 1 if there is any.")  # fmt: skip
    verify.add_argument("dir", metavar="DIR", help="release folder")
    verify.add_argument("--no-progress", action="store_true", help="no progress bars")
    diff = argparse.ArgumentParser(
        prog="portrait release diff", add_help=False,
        description="Compare two releases: crops added, removed or moved between subsets, and changed labels.")
    diff.add_argument("a", metavar="A", help="older release folder")
    diff.add_argument("b", metavar="B", help="newer release folder")
    diff.add_argument("--json", action="store_true", help="print the full JSON instead of a summary")
    return {"verify": verify, "diff": diff}


class _FormHelp(argparse.Action):
    """``-h``: the help of the form named before it (``release verify -h``), else the whole command's."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        form = _form_parsers().get(getattr(namespace, "target", None))
        (form or parser).print_help()
        parser.exit()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("release", help="write / verify / diff versioned dataset releases", usage=USAGE,
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       add_help=False)  # fmt: skip
    p.add_argument("-h", "--help", action=_FormHelp, help="show this help message and exit")
    p.add_argument("target", metavar="PROJECT|verify|diff", help="project to release, or the verify/diff action")
    p.add_argument("paths", nargs="*", metavar="DIR", help="release folder(s) for verify (one) and diff (two)")
    p.add_argument("--version", dest="release_version", metavar="X.Y.Z", help="release version (semantic)")
    p.add_argument("--out", metavar="DIR", help="release folder to create (must not exist)")
    p.add_argument("--split", default="default", metavar="NAME", help="named split to release (default: default)")
    p.add_argument("--k", type=float, default=0.2, help="LTS k for stats.json (default 0.2)")
    p.add_argument("--link", default="auto", choices=("auto", "hardlink", "copy"),
                   help="how crops enter the release: hard links with copy fallback (auto), links only, copies")  # fmt: skip
    p.add_argument("--json", action="store_true", help="diff: print the full JSON instead of a summary")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_release)


def cmd_release(args) -> int:
    from portrait_builder.errors import UserError

    if args.target == "verify":
        if len(args.paths) != 1:
            raise UserError("usage: portrait release verify DIR")
        return _verify(args.paths[0], progress=not args.no_progress)
    if args.target == "diff":
        if len(args.paths) != 2:
            raise UserError("usage: portrait release diff A B")
        return _diff(args.paths[0], args.paths[1], as_json=args.json)
    if args.paths:
        raise UserError(f"unexpected argument {args.paths[0]!r}; usage: portrait release PROJECT --version X.Y.Z --out DIR")
    if not args.release_version or not args.out:
        raise UserError("portrait release PROJECT needs --version X.Y.Z and --out DIR")
    from portrait_builder.release import ReleaseConfig, release_counts, write_release
    from portrait_builder.store import Project

    project = Project.open(args.target)
    config = ReleaseConfig(split=args.split, k=args.k, link=args.link, progress=not args.no_progress)
    out = write_release(project, args.release_version, args.out, config)
    counts = release_counts(project, args.release_version)
    subsets = ", ".join(f"{k} {v['images']} images / {v['identities']} ids" for k, v in counts["subsets"].items())
    print(f"released {args.release_version} to {out}: {counts['crops']} crops ({subsets})")
    return 0


def _verify(root: str, progress: bool) -> int:
    from pathlib import Path

    from portrait_builder.errors import UserError
    from portrait_builder.release import verify_release

    if not Path(root).is_dir():
        raise UserError(f"no release folder at {root}")
    if not (Path(root) / "manifest.json").is_file():
        raise UserError(f"{root} is not a release (no manifest.json)")

    problems = verify_release(root, progress=progress)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"portrait: error: {root}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{root}: OK (checksums, schemas, naming and split invariants)")
    return 0


def _diff(a: str, b: str, as_json: bool) -> int:
    from portrait_builder.release import diff_releases

    result = diff_releases(a, b)
    if as_json:
        print(json.dumps(result, indent=1, sort_keys=True))
        return 0
    s = result["summary"]
    print(f"{result['a']} -> {result['b']}: {s['added']} added, {s['removed']} removed, {s['moved']} moved, "
          f"{s['changed']} label changes ({s['common']} crops in both)")  # fmt: skip
    for crop_id in result["added"]:
        print(f"+ crop {crop_id}")
    for crop_id in result["removed"]:
        print(f"- crop {crop_id}")
    for m in result["moved"]:
        print(f"~ crop {m['crop_id']}: {m['old']} -> {m['new']}")
    for c in result["changed"]:
        print(f"~ crop {c['crop_id']} {c['attribute']}: {c['old']} -> {c['new']}")
    return 0
