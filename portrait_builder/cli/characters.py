"""``portrait characters``: the candidate characters of each movie (clusters of tracks across shots)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("characters", help="candidate characters of each movie: which tracks show one person",
                       description="Compute what is missing (face embeddings of crops with a visible face, then "
                       "the clusters of each movie's tracks into candidate characters, from faces across the "
                       "film and clothes within a shot or adjacent shots, never joining two tracks seen in one "
                       "frame) and list each movie's candidates: their track ids, sizes and whether a person "
                       "confirmed them. Recomputing replaces unconfirmed candidates only.")  # fmt: skip
    p.add_argument("project")
    p.add_argument("--video", metavar="V", help="only this movie (its id, title or path)")
    p.add_argument("--json", action="store_true", help="print a JSON list (one object per candidate) instead of a table")
    p.add_argument("--recluster", action="store_true",
                   help="cluster again even when nothing changed (confirmed candidates stay as they are)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes computing face embeddings (default: the available CPUs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_characters)


def cmd_characters(args) -> int:
    import json
    import sys
    from dataclasses import asdict

    from portrait_builder.characters import CandidateInfo, list_candidates, update_characters
    from portrait_builder.characters.store import video_ids
    from portrait_builder.cli._movies import print_by_movie
    from portrait_builder.errors import UserError
    from portrait_builder.store import Project

    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be >= 1")
    project = Project.open(args.project)
    ids = video_ids(project, args.video)
    report = update_characters(project, args.video, workers=args.workers, progress=not args.no_progress,
                               recluster=args.recluster)  # fmt: skip
    rows = list_candidates(project, ids)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
        return 0
    if report.face_embeddings or report.clustered:
        print(f"{report.face_embeddings} face embedding(s) computed; re-clustered movie(s) "
              f"{', '.join(map(str, report.clustered)) or '-'}", file=sys.stderr)  # fmt: skip
    if not rows:
        print("no candidate characters yet" + (f" in movie {args.video}" if args.video else "") +
              " (a movie needs tracks: `portrait ingest` first)")  # fmt: skip
        return 0

    def line(r: CandidateInfo) -> str:
        who = (f"yes: {r.identity_id} {r.identity_name!r}" if r.identity_name else f"yes: {r.identity_id}") if r.confirmed else "no"
        ids_text = " ".join(map(str, r.track_ids[:20])) + (f" ... (+{len(r.track_ids) - 20})" if len(r.track_ids) > 20 else "")
        return f"  {r.id:>6}  {r.tracks:>6} {r.crops:>6} {r.face_crops:>6}  {who:<28} {ids_text}"

    print_by_movie(rows, "candidate character(s)",
                   f"  {'id':>6}  {'tracks':>6} {'crops':>6} {'faces':>6}  {'confirmed':<28} track ids", line)
    return 0
