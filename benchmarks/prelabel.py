"""Benchmark: `portrait prelabel` throughput (crops/s) against the bare model run over the same crops.

A SQLite project of N generated 256x128 JPEG crops (no labels: every crop is predicted for every
attribute), a checkpoint of the named baseline variant in the checkpoint format `portrait train` writes
(weights as initialised: speed does not depend on training). Printed, both measured in this process:

- reference: the evaluation's inference path (``train.evaluation.predict``: the same DataLoader and
  forward pass, nothing stored), crops/s;
- prelabel: the library call (checkpoint sha256 and load, store queries, forward pass, decisions, one
  upsert transaction per batch), crops/s, and its ratio to the reference (1.0 = the store costs nothing).

Each is run ``--repeats`` times, interleaved, and the medians are compared.

With ``--grid-crops N`` it measures instead the grid view's queries (``store.predictions``) on a
generated N-crop store (benchmarks/bigstore.py, SQLite) holding one body_posture prediction per crop and
labels on 30 % of the crops: first page, a deep page (by key), the value picker and the predictions of
48 shown crops, p50/p95 over repeated calls, next to a reference in the same process: the bare indexed
``SELECT crop_id FROM predictions WHERE attribute = ? AND value = ? ORDER BY confidence DESC LIMIT 48``
(no label join, no count).

    python benchmarks/prelabel.py [--config fss_br_uncer|r50|tiny] [--crops 256] [--batch-size 32] [--json]
    python benchmarks/prelabel.py --grid-crops 250000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sqlalchemy import delete, func, select

from portrait_builder.cpus import available_cpus, fit_torch_threads, loader_workers
from portrait_builder.store import Crop, Prediction, Project, Track, Video
from portrait_builder.train import load_config
from portrait_builder.train.data import CropDataset, build_tasks
from portrait_builder.train.engine import CHECKPOINT_FORMAT
from portrait_builder.train.evaluation import predict
from portrait_builder.train.model import PortraitNet
from portrait_builder.train.prelabel import prelabel

CROPS_PER_TRACK = 16


def make_project(root: Path, n: int, seed: int = 0) -> Project:
    """N crops of blocky random 256x128 JPEGs in one video, 16 per track; no labels."""
    project = Project.init(root)
    rng = np.random.default_rng(seed)
    with project.write() as s:
        video = Video(path="/movies/bench.mp4", fingerprint="b" * 64, title="bench", fps=24.0, frame_count=n * 3,
                      width=1920, height=1080)
        s.add(video)
        s.flush()
        track = None
        for i in range(n):
            if i % CROPS_PER_TRACK == 0:
                track = Track(video_id=video.id, tracker_id=i // CROPS_PER_TRACK + 1, first_frame=3 * i,
                              last_frame=3 * (i + CROPS_PER_TRACK))
                s.add(track)
                s.flush()
            path = f"t{track.tracker_id}/{i:06d}.jpg"
            file = project.crop_root / path
            file.parent.mkdir(parents=True, exist_ok=True)
            small = rng.integers(0, 256, size=(32, 16, 3), dtype=np.uint8)
            Image.fromarray(small).resize((128, 256), Image.BILINEAR).save(file, quality=90)
            s.add(Crop(video_id=video.id, track_id=track.id, frame_index=3 * i, x1=0.0, y1=0.0, x2=400.0, y2=800.0,
                       path=path))
    return project


def make_checkpoint(path: Path, variant: str, taxonomy) -> Path:
    import pandas as pd

    config = load_config(variant)
    tasks = build_tasks(taxonomy, pd.Series([1, 2, 3]))
    model = PortraitNet(config, tasks)
    torch.save({"format": CHECKPOINT_FORMAT, "config": config.to_dict(), "tasks": [t.to_dict() for t in tasks],
                "model": model.state_dict(), "epoch": 0}, path)
    return path


def _percentiles(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def grid_benchmark(n: int, repeats: int = 40) -> dict:
    """Time the grid view's queries on a generated n-crop store (see the module docstring)."""
    from bigstore import BigStoreSpec, build
    from sqlalchemy import insert, text

    from portrait_builder.store.predictions import grid_page, predicted_values, predictions_for

    work = Path(tempfile.mkdtemp(prefix="pb-grid-bench-"))
    try:
        spec = BigStoreSpec(crops=n, videos=50, track_len=25, identities_per_video=20, identified=0.4,
                            coverage={"body_posture": 0.3}, labels=None, embeddings=False, files=False)
        project, _ = build(work / "proj", spec, progress=False)
        rng = np.random.default_rng(0)
        values = np.array(["standing", "walking", "sitting", "running", "lying", "bending", "squatting"])
        share = np.array([0.45, 0.2, 0.2, 0.05, 0.04, 0.03, 0.03])
        with project.session() as s:
            crop_ids = np.array(list(s.scalars(select(Crop.id).order_by(Crop.id))))
        picks = rng.choice(len(values), size=len(crop_ids), p=share)
        conf = rng.uniform(0.2, 1.0, len(crop_ids)).round(4)
        rows = [{"crop_id": int(c), "attribute": "body_posture", "value": str(values[v]), "confidence": float(p),
                 "model": "a" * 64, "created_at": 0.0} for c, v, p in zip(crop_ids, picks, conf, strict=True)]
        with project.write() as s:
            for start in range(0, len(rows), 20_000):
                s.execute(insert(Prediction), rows[start:start + 20_000])
        timings: dict[str, list[float]] = {k: [] for k in ("reference", "first_page", "deep_page", "count",
                                                           "values", "predictions_for")}
        bare = text("SELECT crop_id FROM predictions WHERE attribute = :a AND value = :v "
                    "ORDER BY confidence DESC LIMIT 48")
        with project.session() as s:
            deep = grid_page(s, "body_posture", "standing", limit=n // 4).next_after  # a key far in
            for i in range(repeats):
                value = str(values[i % 3])
                t0 = time.perf_counter()
                s.execute(bare, {"a": "body_posture", "v": value}).all()
                timings["reference"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                page = grid_page(s, "body_posture", value)  # as the view pages: no count
                timings["first_page"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                grid_page(s, "body_posture", "standing", after=deep)
                timings["deep_page"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                grid_page(s, "body_posture", value, limit=1, count=True)
                timings["count"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                predicted_values(s, "body_posture")
                timings["values"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                predictions_for(s, [g.crop_id for g in page.crops], "body_posture")
                timings["predictions_for"].append(time.perf_counter() - t0)
        project.close()
        out = {"crops": n, "predictions": len(rows), "labelled_share": 0.3, "repeats": repeats}
        out.update({k: _percentiles(v) for k, v in timings.items()})
        out["first_page_ratio_to_reference_p50"] = out["first_page"]["p50_ms"] / out["reference"]["p50_ms"]
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="fss_br_uncer", help="baseline variant (default: %(default)s, HRNet-W32)")
    ap.add_argument("--crops", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of each; medians are printed")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--grid-crops", type=int, help="measure the grid view's queries on a store this big instead")
    args = ap.parse_args(argv)
    if args.grid_crops:
        out = grid_benchmark(args.grid_crops)
        print(json.dumps(out, indent=1))
        return 0
    work = Path(tempfile.mkdtemp(prefix="pb-prelabel-bench-"))
    try:
        project = make_project(work / "proj", args.crops)
        ckpt = make_checkpoint(work / "ckpt.pt", args.config, project.taxonomy)
        config = load_config(args.config)
        threads = fit_torch_threads()
        workers = loader_workers(config.num_workers)
        with project.session() as s:
            files = list(s.scalars(select(Crop.path).order_by(Crop.id)))

        from portrait_builder.train.engine import load_checkpoint, model_from_checkpoint

        model, _, _ = model_from_checkpoint(load_checkpoint(ckpt))
        dataset = CropDataset(project.crop_root, files, config.input_size)
        predict(model, torch.utils.data.Subset(dataset, range(min(len(dataset), args.batch_size))),
                torch.device("cpu"), args.batch_size, num_workers=0)  # warm-up: first-call allocations
        # interleaved repeats, medians: the shared box's load changes within seconds
        refs, pres = [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            predict(model, dataset, torch.device("cpu"), args.batch_size, num_workers=workers)
            refs.append(time.perf_counter() - t0)
            if r:
                with project.write() as s:
                    s.execute(delete(Prediction))
            t0 = time.perf_counter()
            result = prelabel(project, ckpt, batch_size=args.batch_size, device="cpu", progress=False)
            pres.append(time.perf_counter() - t0)
        t_ref, t_pre = float(np.median(refs)), float(np.median(pres))
        with project.session() as s:
            stored = s.scalar(select(func.count()).select_from(Prediction))
        t0 = time.perf_counter()
        again = prelabel(project, ckpt, batch_size=args.batch_size, device="cpu", progress=False)
        t_resume = time.perf_counter() - t0
        project.close()
        assert result.crops == args.crops and again.crops == 0
        out = {
            "config": config.name, "backbone": config.backbone, "crops": args.crops,
            "attributes": len(result.attributes), "predictions_stored": int(stored),
            "batch_size": args.batch_size, "repeats": args.repeats, "cpus": available_cpus(), "torch_threads": threads, "loader_workers": workers,
            "reference_crops_per_s": args.crops / t_ref, "prelabel_crops_per_s": args.crops / t_pre,
            "ratio_prelabel_to_reference": t_ref / t_pre, "rerun_s": t_resume,
        }
        if args.json:
            print(json.dumps(out, indent=1))
        else:
            print(f"{config.name} ({config.backbone}), {args.crops} crops, batch {args.batch_size}, "
                  f"{threads} torch threads, {workers} loader workers, median of {args.repeats} interleaved runs")
            print(f"reference (inference only): {out['reference_crops_per_s']:.1f} crops/s")
            print(f"prelabel (store + inference): {out['prelabel_crops_per_s']:.1f} crops/s, "
                  f"{stored} predictions stored; ratio to reference {out['ratio_prelabel_to_reference']:.2f}")
            print(f"rerun with nothing left to predict: {t_resume:.2f}s")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
