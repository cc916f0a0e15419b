"""``portrait prelabel``: store a trained baseline's predictions for unlabelled crops (never labels)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prelabel", help="store a baseline checkpoint's predictions for unlabelled crops",
        description="Run a checkpoint written by `portrait train` over the crops that have no current label of "
                    "an attribute and store one prediction per crop and attribute with its confidence (softmax "
                    "probability of the chosen value; for expression the lowest probability among its per-value "
                    "decisions). Annotators accept predictions in the app; this command writes no label. "
                    "Identity is not predicted. A rerun skips crops already predicted by the same checkpoint. "
                    "On a team store only maintainers may run it.")
    p.add_argument("project")
    p.add_argument("--checkpoint", required=True, help="checkpoint written by portrait train (RUN/last.pt)")
    p.add_argument("--attributes", help="comma-separated attributes (default: every one the checkpoint predicts)")
    p.add_argument("--batch-size", type=int, help="crops per batch and per commit (default: the checkpoint's "
                                                  "evaluation batch size)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto: cuda when present, else cpu (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prelabel)


def cmd_prelabel(args) -> int:
    from portrait_builder.store import Project
    from portrait_builder.train.prelabel import prelabel

    attributes = None
    if args.attributes is not None:
        attributes = [a.strip() for a in args.attributes.split(",") if a.strip()]
    project = Project.open(args.project)
    try:
        result = prelabel(project, args.checkpoint, attributes=attributes, batch_size=args.batch_size,
                          device=args.device, progress=not args.no_progress)
    finally:
        project.close()
    print(f"checkpoint {result.model[:12]}: {result.crops} crops predicted")
    for name in result.attributes:
        print(f"  {name}: {result.stored.get(name, 0)} predictions stored, "
              f"{result.skipped.get(name, 0)} already predicted by this checkpoint")
    print("predictions are not labels: annotators accept them in `portrait annotate`")
    return 0
