"""The README demo: the main job end to end on built-in defaults, in a scratch folder.

Each stage appends itself to ``STAGES``; the demo grows as the product does.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from portrait_builder.errors import UserError

MARKER = ".portrait-demo"


def prepare(out: Path) -> Path:
    """Make ``out`` a fresh demo folder; only a folder an earlier demo made is ever deleted."""
    if out.exists():
        if not (out / MARKER).exists():
            raise UserError(f"{out} exists and was not made by `portrait demo`; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by portrait demo; safe to delete\n")
    return out


def stage_init(out: Path, ctx: dict) -> None:
    from portrait_builder.store import Project

    ctx["project"] = Project.init(out / "project")
    print(f"[init] project at {ctx['project'].root}")


def stage_status(out: Path, ctx: dict) -> None:
    status = ctx["project"].status()
    (out / "status.json").write_text(json.dumps(status, indent=2, sort_keys=True))
    print(f"[status] {status['videos']} videos, {status['tracks']} tracks, {status['crops']} crops, "
          f"{status['identities']} identities")


STAGES = [stage_init, stage_status]


def run_demo(out: str | Path) -> dict:
    out = prepare(Path(out))
    ctx: dict = {}
    for stage in STAGES:
        stage(out, ctx)
    print(f"demo done: everything is under {out}")
    return ctx
