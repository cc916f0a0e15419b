"""One CPU epoch of a baseline variant (default fss_br_uncer: HRNet-W32 from scratch) at batch 16:
CPU seconds per 1,000 train crops, so a user can plan a run.

The release is the test suite's synthetic one (tests/baseline/conftest.py, 256x128 JPEGs following
the release contract); the epoch timer of the training loop reads the process CPU clock here, so the
figure does not depend on what else the machine runs. Wall time is printed too.

Usage: python benchmarks/train_epoch.py [--variant fss_br_uncer] [--ids 8] [--per-id 8] [--unidentified 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "baseline"))
from conftest import make_synthetic_release  # noqa: E402

from portrait_builder.train import engine, load_config, train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="fss_br_uncer", help="pipelines/<variant>.yaml")
    ap.add_argument("--ids", type=int, default=8, help="train identities")
    ap.add_argument("--per-id", type=int, default=8, help="crops per train identity")
    ap.add_argument("--unidentified", type=int, default=32, help="train crops without identity")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pb-epoch-") as tmp:
        release = make_synthetic_release(Path(tmp) / "release", n_train_ids=args.ids, per_train=args.per_id,
                                         n_unidentified=args.unidentified)
        config = dataclasses.replace(load_config(args.variant), epochs=1, batch_size=args.batch_size)
        wall = time.perf_counter()
        engine.time = types.SimpleNamespace(perf_counter=time.process_time)  # epoch "seconds" = CPU seconds
        try:
            result = train(release, config, Path(tmp) / "run", progress=False, device="cpu")
        finally:
            engine.time = time
        record = result.history[-1]
        crops = record["batches"] * args.batch_size
        print(json.dumps({
            "variant": args.variant, "backbone": config.backbone, "batch_size": args.batch_size,
            "batches": record["batches"], "crops": crops, "epoch_cpu_seconds": round(record["seconds"], 1),
            "cpu_seconds_per_1000_crops": round(record["seconds"] / crops * 1000, 1),
            "wall_seconds_with_setup": round(time.perf_counter() - wall, 1), "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "load_average": os.getloadavg()[0],
        }))


if __name__ == "__main__":
    main()
