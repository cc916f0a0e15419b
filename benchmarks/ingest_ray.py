"""Ray ingest vs the local executor in one run: the same synthetic videos into two fresh projects, wall
time of each, plus the Ray start-up measured apart. Checks both stores hold the same crops.

    python benchmarks/ingest_ray.py [--videos 2] [--frames 100] [--num-cpus 2] [--address ADDR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import ray
from sqlalchemy import select

from portrait_builder.ingest import IngestConfig, VideoRequest, create_executor
from portrait_builder.store import Crop, Project
from portrait_builder.synth import SynthConfig, render_video


def crops(project: Project) -> set:
    with project.session() as s:
        return {(p.split("/", 1)[1], round(x1, 3)) for p, x1 in s.execute(select(Crop.path, Crop.x1))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--num-cpus", type=int, default=2, help="local Ray instance size (ignored with --address)")
    ap.add_argument("--address", help="join this Ray cluster instead of starting a local one")
    a = ap.parse_args()
    config = IngestConfig(crop_every=5, min_height=40)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clips = []
        for i in range(a.videos):
            clips.append(tmp / f"clip{i}.mp4")
            render_video(clips[-1], SynthConfig(num_frames=a.frames, shot_starts=(a.frames // 2,), seed=10 + i))
        requests = [VideoRequest(str(c), config) for c in clips]

        local = Project.init(tmp / "local")
        t = time.perf_counter()
        list(create_executor("local").run(local, requests, progress=False))
        t_local = time.perf_counter() - t

        t = time.perf_counter()
        if a.address:
            ray.init(address=a.address, logging_level="warning")
        else:
            ray.init(num_cpus=a.num_cpus, include_dashboard=False, logging_level="warning")
        t_start = time.perf_counter() - t
        resources = ray.cluster_resources()
        distributed = Project.init(tmp / "ray")
        t = time.perf_counter()
        reports = [r for _, r in create_executor("ray").run(distributed, requests, progress=False)]
        t_ray = time.perf_counter() - t
        ray.shutdown()
        same = crops(local) == crops(distributed)
    frames = sum(r.frames_processed for r in reports)
    print(f"{a.videos} videos x {a.frames} frames (480x320 synthetic, HOG); Ray: {resources.get('CPU', 0):.0f} CPU, "
          f"{resources.get('GPU', 0):.0f} GPU")
    print(f"{'executor':<26} {'wall s':>8} {'frames/s':>9}")
    print(f"{'local (sequential)':<26} {t_local:>8.1f} {frames / t_local:>9.1f}")
    print(f"{'ray (1 task per video)':<26} {t_ray:>8.1f} {frames / t_ray:>9.1f}")
    print(f"ray start-up {t_start:.1f} s (not in the ray wall time); local / ray wall = {t_local / t_ray:.2f}; "
          f"identical crops: {same}")


if __name__ == "__main__":
    main()
