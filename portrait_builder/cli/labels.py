"""``portrait labels export|import``: every crop with its current labels out; validated labels in, all or nothing."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("labels", help="export or import labels (CSV or Parquet)",
                       description="Export every crop with its current labels, or import labels all-or-nothing.")  # fmt: skip
    actions = p.add_subparsers(dest="labels_action", metavar="ACTION", required=True)

    e = actions.add_parser("export", help="write every crop (id, file, video, track, frame, box) and its current labels",
                           description="Write one row per crop: crop_id, file, video, video_id, track, frame, "
                           "x1, y1, x2, y2 and one column per attribute (stored text: multi-label values joined by '|', "
                           "identity as its id); empty when unlabelled.")  # fmt: skip
    e.add_argument("project")
    e.add_argument("out", metavar="OUT.csv|OUT.parquet")
    e.set_defaults(func=cmd_export)

    i = actions.add_parser("import", help="add labels from a file (crop_id, attribute, value, annotator); all or nothing",
                           description="Add one label per row (columns crop_id, attribute, value, annotator name) "
                           "through the app's validation, in one transaction: if any row is bad, every bad row is "
                           "listed (rows counted from 1 after the header) and nothing is written. An identity value "
                           "may be a character's name instead of its id ('name:' in front forces a name that looks "
                           "like an id or 'unknown'): the character of the crop's movie with that name, letter case "
                           "aside, created on first use with the gender the file's gender rows give its crops "
                           "('unsure' when none).")  # fmt: skip
    i.add_argument("project")
    i.add_argument("file", metavar="FILE.csv|FILE.parquet")
    i.set_defaults(func=cmd_import)


def cmd_export(args) -> int:
    from portrait_builder.release import export_labels
    from portrait_builder.store import Project

    n = export_labels(Project.open(args.project), args.out)
    print(f"wrote {n} crops to {args.out}")
    return 0


def cmd_import(args) -> int:
    from portrait_builder.release import LabelImportError, import_labels
    from portrait_builder.store import Project

    project = Project.open(args.project)
    try:
        summary = import_labels(project, args.file)
    except LabelImportError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        print(f"portrait: error: {exc}", file=sys.stderr)
        return exc.exit_code
    detail = ", ".join(f"{k} {v}" for k, v in summary.by_attribute.items())
    print(f"imported {summary.rows} labels" + (f" ({detail})" if detail else ""))
    if summary.created:
        made = ", ".join(f"{c.id} {c.name!r} ({c.gender}, movie {c.video!r})" for c in summary.created)
        print(f"created {len(summary.created)} character(s): {made}")
    return 0
