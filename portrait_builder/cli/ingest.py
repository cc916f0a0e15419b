"""``portrait ingest`` (videos into a project) and ``portrait doctor`` (crop files vs rows)."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="decode, detect, track and crop videos into a project",
        description="Ingest videos: ffmpeg decode, person detection, tracking, 256x128 crops into the store. "
        "Resumable: re-running after a crash continues after the last committed frame. Defaults come from "
        "pipelines/ingest.yaml.",
    )
    p.add_argument("project")
    p.add_argument("videos", nargs="+", metavar="VIDEO")
    p.add_argument("--detector", help="detector backend: hog (default, no weights), onnx, jde")
    p.add_argument("--weights", metavar="PATH", help="detector weights (onnx model, jde checkpoint)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--detector-option", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, repeatable (e.g. size=576x320 for a published JDE checkpoint, "
                   "upscale=2 for hog); values are read as YAML scalars")
    p.add_argument("--track-stride", type=int, metavar="S", help="detect and track every S-th frame (shot cuts are "
                   "still found on every frame); 0 (default): from the frame rate, 3 for 24-30 fps film")
    p.add_argument("--crop-every", type=int, metavar="N", help="crops at every N-th processed frame, for every tracked "
                   "person at once")
    p.add_argument("--working-size", type=int, metavar="PX", help="detection on frames scaled down by ffmpeg to this "
                   "longer side (default 640; 0: the source size); boxes are stored in source pixels")
    p.add_argument("--no-letterbox", dest="letterbox", action="store_false", default=None,
                   help="do not look for black bars (by default they are found once per video and left out)")
    p.add_argument("--shot-detector", metavar="NAME", help="shot boundary detector (default: the package's)")
    p.add_argument("--min-height", type=float, metavar="PX", help="no crops of boxes shorter than this")
    p.add_argument("--min-score", type=float, metavar="X", help="no crops of boxes scoring below this")
    p.add_argument("--mot-out", metavar="FILE", help="also write every tracked box in MOTChallenge format "
                   "(one video only; with several, VIDEO-STEM is inserted before the suffix)")
    p.add_argument("--config", metavar="YAML", help="ingest settings file (default: the shipped pipelines/ingest.yaml)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--executor", default="local", metavar="NAME",
                   help="local (default: this process, one video after another) or ray (one Ray task per video; "
                   "workers write crop files, this process commits their rows)")
    p.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to join (e.g. ray://head:10001 or auto); "
                   "default: start a local Ray instance")
    p.add_argument("--max-retries", type=int, metavar="N", help="ray: retries of a failed video task (default 3)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("doctor", help="check crop files against the store (orphans, missing files) and portrait.yaml for a password",
                       description="Report crop files no row names (orphans, leftovers of a crash), rows whose "
                       "file is missing, and a database password in portrait.yaml; --repair deletes orphans, re-cuts "
                       "missing crops from their videos and rewrites portrait.yaml without the password.")
    p.add_argument("project")
    p.add_argument("--repair", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)


_FLAGS = {"detector": "detector", "weights": "weights", "device": "device", "track_stride": "track_stride",
          "crop_every": "crop_every", "working_size": "working_size", "letterbox": "letterbox",
          "shot_detector": "shot_detector", "min_height": "min_height", "min_score": "min_score"}


def cmd_ingest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from portrait_builder.errors import UserError
    from portrait_builder.ingest import IngestConfig, load_ingest_yaml
    from portrait_builder.store import Project

    values = load_ingest_yaml(args.config)
    for attr, key in _FLAGS.items():
        if getattr(args, attr) is not None:
            values[key] = getattr(args, attr)
    if args.detector_option:
        values["detector_options"] = {**(values.get("detector_options") or {}), **_parse_options(args.detector_option)}
    base = IngestConfig.from_mapping(values)
    from portrait_builder.detect import detector_class

    detector_class(base.detector)  # an unknown backend fails before any video is opened
    if base.shot_cuts and base.shot_detector:
        from portrait_builder.track import SHOT_DETECTORS

        if base.shot_detector not in SHOT_DETECTORS:
            raise UserError(f"unknown shot detector {base.shot_detector!r}; valid: {', '.join(SHOT_DETECTORS)}")
    from portrait_builder.ingest.executors import VideoRequest, create_executor

    options = {}
    if args.executor == "ray":
        options = {k: v for k, v in (("address", args.ray_address), ("max_retries", args.max_retries)) if v is not None}
    elif args.ray_address is not None or args.max_retries is not None:
        raise UserError("--ray-address and --max-retries need --executor ray")
    executor = create_executor(args.executor, **options)
    project = Project.open(args.project)
    for v in args.videos:  # check every input before the first long run
        if not Path(v).is_file():
            raise UserError(f"video not found: {v}")
    from dataclasses import replace

    requests = []
    for v in args.videos:
        mot = args.mot_out
        if mot and len(args.videos) > 1:
            m = Path(mot)
            mot = str(m.with_name(f"{m.stem}-{Path(v).stem}{m.suffix}"))
        requests.append(VideoRequest(v, replace(base, mot_out=mot)))
    bad = []
    for req, report in executor.run(project, requests, progress=not args.no_progress):
        v = req.path
        if report.skipped:
            print(f"{v}: already ingested (video {report.video_id}), nothing to do")
            continue
        print(f"{v}: {report.status}: {report.frames_processed} frames, {report.shots} shots, "
              f"{report.tracks} tracks, {report.crops} crops, {report.fps_end_to_end} frames/s"
              + (f" ({report.realtime_ratio}x real time)" if report.realtime_ratio else ""))
        if report.status != "done":
            bad.append(f"{v}: {report.status}: {report.error}")
    if bad:
        kept = " (crops before the bad point are kept)" if any(": partial: " in b for b in bad) else ""
        print(f"portrait: error: {'; '.join(bad)}{kept}", file=sys.stderr)
        return 1
    return 0


def _parse_options(items: list[str]) -> dict:
    import yaml

    from portrait_builder.errors import UserError

    options = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UserError(f"--detector-option wants KEY=VALUE, got {item!r}")
        options[key] = yaml.safe_load(text) if text else ""
    return options


def cmd_doctor(args) -> int:
    from portrait_builder.ingest import doctor
    from portrait_builder.store import Project
    from portrait_builder.store.project import config_secrets

    secrets = config_secrets(args.project, repair=args.repair)  # first: with a stale password the store may not open
    report = {**doctor(Project.open(args.project), repair=args.repair), **secrets}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"crops {report['crops']}, files {report['files']}")
        print(f"orphan files {len(report['orphans'])}, temp files {len(report['temp_files'])}, missing files {len(report['missing'])}")
        if args.repair:
            print(f"removed {report['removed']}, restored {report['restored']}, unrepairable {len(report['unrepairable'])}")
        if secrets["removed"]:
            print(f"{secrets['config']}: database password removed (keep it in ~/.pgpass; see docs/team.md)")
        elif secrets["password_in_config"]:
            print(f"{secrets['config']}: holds a database password; `--repair` rewrites it without (keep it in ~/.pgpass)")
    problems = report["unrepairable"] if args.repair else report["orphans"] + report["temp_files"] + report["missing"]
    return 1 if problems or (secrets["password_in_config"] and not secrets["removed"]) else 0
