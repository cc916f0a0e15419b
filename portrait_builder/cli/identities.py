"""``portrait identities list|rename|merge``: the characters of each movie, outside the app."""

from __future__ import annotations

import argparse

from portrait_builder.errors import UserError


def _identity_id(text: str) -> int:
    # checked here rather than by argparse's type=, so a mistake is one `portrait: error:` line
    if not text.strip().isdigit():
        raise UserError(f"{text!r} is not a character id; see `portrait identities list`")
    return int(text)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("identities", help="list, rename or merge the characters of each movie",
                       description="The characters (identities) of each movie: list them with their crop counts and "
                       "exemplar, rename one, or merge two that turn out to be one person.")  # fmt: skip
    actions = p.add_subparsers(dest="identities_action", metavar="ACTION", required=True)

    a = actions.add_parser("list", help="the characters of each movie with crop counts and exemplar",
                           description="List every character, movie by movie: id, name, gender, the number of crops "
                           "whose current identity it is, and its exemplar crop (id and file under the crop folder).")  # fmt: skip
    a.add_argument("project")
    a.add_argument("--video", metavar="V", help="only this movie (its id, title or path)")
    a.add_argument("--json", action="store_true", help="print a JSON list (one object per character) instead of a table")
    a.set_defaults(func=cmd_list)

    a = actions.add_parser("rename", help="give a character a new name",
                           description="Give a character a new name. Names are unique within a movie (letter case "
                           "aside), since label import finds characters by name.")  # fmt: skip
    a.add_argument("project")
    a.add_argument("id", metavar="ID", help="the character's id (see `portrait identities list`)")
    a.add_argument("name", metavar="NAME")
    a.set_defaults(func=cmd_rename)

    a = actions.add_parser("merge", help="merge two characters of one movie that are one person",
                           description="Move every crop of character OTHER to KEEP (new identity labels, and KEEP's "
                           "gender where a crop's differs; the history keeps the old labels). The merge is one action "
                           "in the annotator's history: undo it in the app as that annotator. Characters of two "
                           "different movies cannot be merged.")  # fmt: skip
    a.add_argument("project")
    a.add_argument("keep", metavar="KEEP", help="the character that stays")
    a.add_argument("other", metavar="OTHER", help="the character whose crops move to KEEP")
    a.add_argument("--annotator", metavar="NAME",
                   help="who merges (needs the right to label identities); the merge joins their undo history. On a "
                   "PostgreSQL store it is the database login you connect with, and this name is only checked")
    a.set_defaults(func=cmd_merge)


def _describe(c) -> str:
    return f"{c.id} {c.name!r}" if c.name else f"{c.id} (no name)"


def cmd_list(args) -> int:
    import json
    from dataclasses import asdict

    from portrait_builder.annotation import CharacterInfo, list_identities
    from portrait_builder.cli._movies import print_by_movie
    from portrait_builder.store import Project

    rows = list_identities(Project.open(args.project), args.video)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
        return 0
    if not rows:
        print("no characters yet" + (f" in movie {args.video}" if args.video else ""))
        return 0

    def line(r: CharacterInfo) -> str:
        exemplar = f"crop {r.exemplar_crop_id} ({r.exemplar_path})" if r.exemplar_crop_id is not None else "-"
        return f"  {r.id:>6}  {(r.name or '-'):<24} {(r.gender or '-'):<8} {r.crops:>6}  {exemplar}"

    print_by_movie(rows, "character(s)", f"  {'id':>6}  {'name':<24} {'gender':<8} {'crops':>6}  exemplar", line)
    return 0


def cmd_rename(args) -> int:
    from portrait_builder.annotation import rename_identity
    from portrait_builder.store import Project

    info = rename_identity(Project.open(args.project), _identity_id(args.id), args.name)
    print(f"character {info.id} of movie {info.video!r} is now {info.name!r}")
    return 0


def cmd_merge(args) -> int:
    from portrait_builder.annotation import merge_identities
    from portrait_builder.store import Project

    r = merge_identities(Project.open(args.project), _identity_id(args.keep), _identity_id(args.other), args.annotator)
    print(f"merged character {_describe(r.other)} into {_describe(r.keep)} (movie {r.keep.video!r}): "
          f"{r.moved} crop(s) relabelled, {r.genders} gender label(s) set to {r.keep.gender!r}; "
          f"{r.keep.id} now has {r.keep.crops} crop(s)")  # fmt: skip
    if r.moved:
        print(f"undo: in the app as {r.annotator} (the merge is the last action of their history)")
    return 0
