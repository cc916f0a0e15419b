"""Shot-boundary detectors side by side: F1, precision, recall and frames/s per detector.

Scored on the development film clip's hand cut list (../shared/data/movie/tears_of_steel/shots.json:
three hard cuts; a strobe inside a shot and an in-shot morph are not cuts) and on synthetic clips
(portrait_builder.synth) whose shots are joined by hard cuts, fades through black or dissolves, with
close-ups and people entering from the edge. A cut counts when reported within 2 frames of the true one,
matched one-to-one (a gradual transition reported twice: one true positive, one false positive).

Speed: each detector's push() on its own input size (frames decoded beforehand, so decoding is not
counted), on one thread (torch.set_num_threads(1)); "core share" is the fraction of one core it needs
to keep up with 24 fps. The ratio column is frames/s over today's histogram detector measured in the
same run (the figure to quote on a shared machine).

    python benchmarks/shots.py [--detectors histogram content adaptive transnetv2 hybrid] [--seeds 0 1 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from portrait_builder.synth import SynthConfig, render_video
from portrait_builder.track import DEFAULT_SHOT_DETECTOR, SHOT_DETECTORS, CutScore, create_shot_detector, score_cuts
from portrait_builder.track.shots import iter_small_frames

DEV_CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "movie" / "tears_of_steel"
BASELINE = "histogram"


TRANSITION_FRAMES = (12, 24, 36)  # by seed, in turn: half a second to a second and a half at 24 fps


def synthetic_clips(folder: Path, seeds: tuple[int, ...]) -> dict[str, tuple[Path, list[int]]]:
    """Per transition kind and seed, a clip of 280 frames (11.7 s at 24 fps) with a shot every 56 frames
    (4 transitions); shot 2 is a close-up and one person walks in from the edge of every other shot.
    Gradual transitions last 12, 24 or 36 frames by seed (seed 0: 12, 1: 24, 2: 36, 3: 12, ...)."""
    clips = {}
    for kind in ("cut", "fade", "dissolve"):
        for seed in seeds:
            length = TRANSITION_FRAMES[seed % len(TRANSITION_FRAMES)]
            cfg = SynthConfig(width=480, height=272, fps=24.0, num_frames=280, num_people=3, shot_starts=(56, 112, 168, 224),
                              transitions=(kind,) * 4, transition_frames=length, close_ups=(2,), edge_entrance=True,
                              min_person_height=110, max_person_height=150, min_speed=2.0, max_speed=5.0, seed=seed)  # fmt: skip
            path = folder / f"synth_{kind}_{seed}.mp4"
            gt = render_video(path, cfg)
            name = f"synthetic {kind}s (seed {seed})" if kind == "cut" else f"synthetic {kind}s (seed {seed}, {length} frames)"
            clips[name] = (path, gt.cuts)
    return clips


def run_detector(name: str, frames: list[np.ndarray]) -> tuple[list[int], float]:
    """(cuts, seconds spent in push/finish)."""
    det = create_shot_detector(name)
    cuts: list[int] = []
    t0 = time.perf_counter()
    for i, f in enumerate(frames):
        cuts += det.push(i, f)
    cuts += det.finish()
    dt = time.perf_counter() - t0
    if hasattr(det, "windows_run"):
        print(f"  {name}: {det.windows_run} TransNetV2 windows over {len(frames)} frames", file=sys.stderr)
    return sorted(cuts), dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detectors", nargs="+", default=list(SHOT_DETECTORS), choices=list(SHOT_DETECTORS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--json", type=Path, help="also write the table here")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    names = list(dict.fromkeys([BASELINE, *args.detectors]))
    with tempfile.TemporaryDirectory() as tmp:
        clips = {}
        if (DEV_CLIP / "clip.mp4").is_file():
            clips["dev clip (Tears of Steel)"] = (DEV_CLIP / "clip.mp4", json.loads((DEV_CLIP / "shots.json").read_text())["cuts"])
        else:
            print(f"note: {DEV_CLIP} not present; synthetic clips only", file=sys.stderr)
        clips.update(synthetic_clips(Path(tmp), tuple(args.seeds)))
        sizes = {n: create_shot_detector(n).frame_size for n in names}
        decoded = {(c, s): [f.copy() for _, f in iter_small_frames(p, s)] for c, (p, _) in clips.items() for s in set(sizes.values())}
    groups = {"dev clip": [c for c in clips if c.startswith("dev")], **{
        f"synthetic {k}s": [c for c in clips if c.startswith(f"synthetic {k}s")] for k in ("cut", "fade", "dissolve")}}
    groups = {g: m for g, m in groups.items() if m}
    rows = []
    for name in names:
        per_clip = {}
        for clip, (_, truth) in clips.items():
            fr = decoded[(clip, sizes[name])]
            cuts, dt = run_detector(name, fr)
            per_clip[clip] = {"cuts": cuts, "truth": truth, "score": score_cuts(cuts, truth), "seconds": dt, "frames": len(fr)}
        per_group = {}
        for g, members in groups.items():
            score = sum((per_clip[c]["score"] for c in members[1:]), per_clip[members[0]]["score"])
            fps = sum(per_clip[c]["frames"] for c in members) / sum(per_clip[c]["seconds"] for c in members)
            per_group[g] = {"score": score, "fps": fps}
        total = sum((v["score"] for v in per_clip.values()), CutScore(0, 0, 0))
        fps = sum(v["frames"] for v in per_clip.values()) / sum(v["seconds"] for v in per_clip.values())
        rows.append({"detector": name, "frame_size": sizes[name], "fps": fps, "total": total, "groups": per_group, "clips": per_clip})
    base = next(r for r in rows if r["detector"] == BASELINE)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch threads 1; "
          f"default: {DEFAULT_SHOT_DETECTOR}")
    print("\nF1 (true positives / false positives / missed), a cut within 2 frames:")
    print(f"{'detector':<12} {'input':>7} " + " ".join(f"{g:>18}" for g in groups) + f" {'all F1':>7} {'P':>5} {'R':>5}")
    for r in rows:
        w, h = r["frame_size"]
        cells = [f"{v['score'].f1:.3f} ({v['score'].tp}/{v['score'].fp}/{v['score'].fn})".rjust(18) for v in r["groups"].values()]
        t = r["total"]
        print(f"{r['detector']:<12} {f'{w}x{h}':>7} " + " ".join(cells) + f" {t.f1:>7.3f} {t.precision:>5.2f} {t.recall:>5.2f}")
    print(f"\nframes/s on one thread (ratio to {BASELINE} on the same clips; share of one core at 24 fps):")
    print(f"{'detector':<12} " + " ".join(f"{g:>24}" for g in groups))
    for r in rows:
        cells = [f"{v['fps']:.0f} ({v['fps'] / base['groups'][g]['fps']:.3f}x, {24 / v['fps']:.1%})".rjust(24) for g, v in r["groups"].items()]
        print(f"{r['detector']:<12} " + " ".join(cells))
    for r in rows:
        for clip, v in r["clips"].items():
            if v["score"].fp or v["score"].fn:
                print(f"  {r['detector']}: {clip}: reported {v['cuts']} truth {v['truth']}")
    out = [{"detector": r["detector"], "frame_size": list(r["frame_size"]), "fps": r["fps"], "f1": r["total"].f1,
            "precision": r["total"].precision, "recall": r["total"].recall,
            "groups": {g: {"f1": v["score"].f1, "tp": v["score"].tp, "fp": v["score"].fp, "fn": v["score"].fn, "fps": v["fps"],
                           "fps_ratio_vs_histogram": v["fps"] / base["groups"][g]["fps"]} for g, v in r["groups"].items()},
            "clips": {c: {"cuts": v["cuts"], "truth": v["truth"]} for c, v in r["clips"].items()}} for r in rows]  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"machine": platform.machine(), "default": DEFAULT_SHOT_DETECTOR, "rows": out}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
