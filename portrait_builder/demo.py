"""The README demo: the main job end to end on built-in defaults, in a scratch folder.

Synthetic movies -> ingest (HOG + JDE association) -> ground-truth labels written through the
annotation service by named synthetic annotators -> pHash -> groups -> split -> stats -> a verified
release -> a short baseline training run -> the evaluation table. Everything runs on the CPU.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from portrait_builder.errors import UserError

MARKER = ".portrait-demo"


@dataclass(frozen=True)
class DemoConfig:
    movies: int = 2
    frames: int = 120
    people: int = 6
    crop_every: int = 3
    seed: int = 0
    train_config: str = "tiny"
    epochs: int | None = None  # None: the training config's own


def prepare(out: Path) -> Path:
    """Make ``out`` a fresh demo folder; only a folder an earlier demo made is ever deleted."""
    if out.exists():
        if not (out / MARKER).exists():
            raise UserError(f"{out} exists and was not made by `portrait demo`; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by portrait demo; safe to delete\n")
    return out


def _say(stage: str, text: str, started: float) -> None:
    print(f"[{stage}] {text} ({time.perf_counter() - started:.1f} s)", flush=True)


def stage_init(out: Path, cfg: DemoConfig, ctx: dict) -> None:
    from portrait_builder.store import Project

    ctx["project"] = Project.init(out / "project")
    print(f"[init] project at {ctx['project'].root}")


def stage_ingest(out: Path, cfg: DemoConfig, ctx: dict) -> None:
    from portrait_builder.ingest import IngestConfig, ingest_video
    from portrait_builder.synth import SynthConfig, render_video

    project, ctx["truth"] = ctx["project"], {}
    for m in range(cfg.movies):
        t = time.perf_counter()
        path = out / "movies" / f"movie{m + 1}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        synth = SynthConfig(num_frames=cfg.frames, num_people=cfg.people, shot_starts=(cfg.frames // 2,),
                            seed=cfg.seed + m)
        gt = render_video(path, synth)
        gt.write_mot(path.with_suffix(".gt.txt"))
        # The synthetic figures are flat coloured shapes with no faces: the film detector (the default,
        # made for real footage) hardly sees them, HOG's shape template does.
        report = ingest_video(project, path, IngestConfig(detector="hog", crop_every=cfg.crop_every,
                                                          mot_out=str(path.with_suffix(".mot.txt"))), progress=False)
        ctx["truth"][report.video_id] = gt
        _say("ingest", f"{path.name}: {report.tracks} tracks, {report.crops} crops", t)


def stage_label(out: Path, cfg: DemoConfig, ctx: dict) -> None:
    from portrait_builder.synth.groundtruth import label_from_ground_truth

    for video_id, gt in ctx["truth"].items():
        t = time.perf_counter()
        done = label_from_ground_truth(ctx["project"], video_id, gt)
        _say("label", f"video {video_id}: {done.matched}/{done.crops} crops matched to {done.identities} "
                      f"people, {done.labels} labels by synthetic annotators", t)


def stage_dataset(out: Path, cfg: DemoConfig, ctx: dict) -> None:
    from portrait_builder.dedup import group_project, hash_project
    from portrait_builder.split import SplitConfig, format_summary, split_project
    from portrait_builder.stats import dataset_stats, format_table, project_frame, write_stats

    project, t = ctx["project"], time.perf_counter()
    hash_project(project, progress=False)
    groups = group_project(project)
    _say("dedup", f"pHash of every crop, {groups.n_groups} near-duplicate groups", t)
    result = split_project(project, SplitConfig(seed=cfg.seed, test_fraction=0.5))
    print(format_summary(result["summary"]))
    stats = dataset_stats(project_frame(project), project.taxonomy)
    write_stats(stats, out / "stats")
    print(format_table(stats))


def stage_release(out: Path, cfg: DemoConfig, ctx: dict) -> None:
    from portrait_builder.release import ReleaseConfig, verify_release, write_release

    t = time.perf_counter()
    (out / "releases").mkdir(exist_ok=True)
    release = write_release(ctx["project"], "0.1.0", out / "releases" / "v0.1.0", ReleaseConfig(progress=False))
    problems = verify_release(release)
    if problems:
        raise UserError(f"demo release failed verification: {problems[0]}")
    ctx["release"] = release
    _say("release", f"{release} written and verified", t)


def stage_baseline(out: Path, cfg: DemoConfig, ctx: dict) -> None:
    from portrait_builder.train import evaluate, format_row, load_config, train

    t = time.perf_counter()
    config = load_config(cfg.train_config, epochs=cfg.epochs)
    result = train(ctx["release"], config, out / "run", progress=False)
    _say("train", f"{config.name}: {config.epochs} epochs -> {result.checkpoint}", t)
    row = evaluate(ctx["release"], result.checkpoint, progress=False)
    (out / "evaluation.json").write_text(json.dumps(row, indent=2, sort_keys=True, default=str))
    ctx["evaluation"] = row
    print(format_row(row))


def stage_status(out: Path, cfg: DemoConfig, ctx: dict) -> None:
    status = ctx["project"].status()
    (out / "status.json").write_text(json.dumps(status, indent=2, sort_keys=True))
    print(f"[status] {status['videos']} videos, {status['tracks']} tracks, {status['crops']} crops, "
          f"{status['identities']} identities")


STAGES = [stage_init, stage_ingest, stage_label, stage_dataset, stage_release, stage_baseline, stage_status]


def run_demo(out: str | Path, config: DemoConfig | None = None) -> dict:
    config = config or DemoConfig()
    out = prepare(Path(out))
    ctx: dict = {}
    started = time.perf_counter()
    for stage in STAGES:
        stage(out, config, ctx)
    print(f"demo done in {time.perf_counter() - started:.0f} s: everything is under {out}")
    return ctx
