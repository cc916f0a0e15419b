"""Re-id evaluation speed: ours (portrait_builder.evaluate) vs a straightforward NumPy Market-1501
evaluation (torchreid's eval_market1501 logic, pHash-group exclusion instead of same-camera), in one run.

Synthetic features of a chosen quality: each identity a random centre, each crop its identity's
centre times a signal strength plus unit Gaussian noise; unidentified gallery crops (id -1) come from
other people's centres; pHash groups of about 3 crops. "paper" quality is tuned to a macro mAP of
about 0.35 at the Portrait250K test size (the paper's models reach 0.31 to 0.42), "random" is a
near-random model (mAP about 0.002, chance level).

1. 2,000 queries x 20,000 gallery (dim 1280), both qualities: the evaluation proper on the same
   float32 distance matrix (the reference's input, as torchreid computes it): time of the reference
   and ours, their ratio (``ratio_good``, ``ratio_weak``), the numbers side by side; then the same
   from features, the distance product included on both sides (it is the same BLAS work on both).
2. The Portrait250K test size, 12,361 x 86,006 (dim 1280), macro, ours from features, both
   qualities; the first 300 queries are checked against the NumPy reference in the same run (the
   whole set would need a 12,361 x 86,006 float64 matrix and its argsort, about 17 GB).

Usage: python benchmarks/evaluate.py [--dim 1280] [--skip-full] [--device cpu|cuda] [--json]
Absolute times on a shared machine are noisy; the ratios are measured in the same process, and the
CPU seconds (process time) show the work independently of other load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from functools import partial

import numpy as np
import torch

from portrait_builder.evaluate import reid_metrics, reid_metrics_from_features
from portrait_builder.testing.memory import RssSampler
from portrait_builder.testing.reid_reference import market1501_reference

reference_eval = partial(market1501_reference, sort_kind="quicksort")  # as torchreid sorts
KEYS = ("rank1", "rank5", "rank10", "mAP")
# Signal strength (centre scale) per model quality at dim 1280, from a calibration run of this script.
QUALITY = {"paper": 0.32, "random": 0.02}


def reference_distances(qf: np.ndarray, gf: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances as torchreid's euclidean_squared_distance forms them."""
    q2 = (qf * qf).sum(1)[:, None]
    g2 = (gf * gf).sum(1)[None, :]
    return np.maximum(q2 + g2 - 2.0 * qf @ gf.T, 0)


def make_data(nq: int, ng: int, dim: int, signal: float, seed: int = 0, n_ids: int = 426,
              n_query_ids: int = 404, unidentified: float = 0.2):
    """Query/gallery features (float32), ids (-1: unidentified) and pHash groups (-1: none)."""
    rng = np.random.default_rng(seed)
    n_others = max(1, int(ng * unidentified) // 20)  # unlabelled people, ~20 crops each
    centres = rng.normal(size=(n_ids + n_others, dim)).astype(np.float32) * np.float32(signal)
    q_ids = rng.integers(0, n_query_ids, nq)
    g_ids = rng.integers(0, n_ids, ng)
    g_ids[: min(ng, n_ids)] = np.arange(min(ng, n_ids))  # every identity has gallery crops
    other = rng.random(ng) < unidentified
    g_people = np.where(other, n_ids + rng.integers(0, n_others, ng), g_ids)
    qf = centres[q_ids] + rng.standard_normal(size=(nq, dim), dtype=np.float32)
    gf = centres[g_people] + rng.standard_normal(size=(ng, dim), dtype=np.float32)
    g_ids = np.where(other, -1, g_ids)
    q_groups = rng.integers(0, (nq + ng) // 3, nq)
    g_groups = rng.integers(0, (nq + ng) // 3, ng)
    g_groups[rng.random(ng) < 0.5] = -1
    return qf, gf, q_ids, g_ids, q_groups, g_groups


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def max_diff(a: dict, b: dict) -> float:
    return max(abs(a[k] - b[k]) for k in KEYS)


def row(name: str, r: dict, t: float, cpu: float) -> str:
    return f"{name:12}" + "".join(f"{r[k]:10.6f}" for k in KEYS) + f"{t:10.2f}{cpu:10.2f}"


def small_case(dim: int, dev: str, quality: str, log) -> dict:
    qf, gf, q_ids, g_ids, q_groups, g_groups = make_data(2000, 20000, dim, QUALITY[quality])
    dist = reference_distances(qf, gf)  # float32, as torchreid hands its distmat to eval_market1501
    reid_metrics(dist[:16], q_ids[:16], g_ids, q_groups[:16], g_groups, device=dev)  # warm-up
    ref, t_ref, c_ref = timed(lambda: reference_eval(dist, q_ids, g_ids, q_groups, g_groups))
    ours, t_ours, c_ours = timed(lambda: reid_metrics(dist, q_ids, g_ids, q_groups, g_groups, macro=False, device=dev))
    log(f"\n[1] 2,000 x 20,000, {quality} model, evaluation of the same float32 distance matrix "
        "(micro = standard Market-1501)")
    log(f"{'':12}{'rank1':>10}{'rank5':>10}{'rank10':>10}{'mAP':>10}{'wall s':>10}{'cpu s':>10}")
    log(row("numpy ref", ref, t_ref, c_ref))
    log(row("ours", ours, t_ours, c_ours))
    ratio = t_ref / t_ours
    # quicksort orders tied distances arbitrarily; the stable sort breaks ties by gallery order, as ours
    stable = market1501_reference(dist, q_ids, g_ids, q_groups, g_groups)
    log(f"max |difference| = {max_diff(ref, ours):.2e} (vs the stable-sort reference: "
        f"{max_diff(stable, ours):.2e}); speed-up = {ratio:.1f}x (cpu {c_ref / c_ours:.1f}x)")
    ref_f, t_ref_f, c_ref_f = timed(lambda: reference_eval(reference_distances(qf, gf), q_ids, g_ids, q_groups,
                                                           g_groups))
    ours_f, t_ours_f, c_ours_f = timed(lambda: reid_metrics_from_features(qf, gf, q_ids, g_ids, q_groups, g_groups,
                                                                          macro=False, device=dev))
    ratio_f = t_ref_f / t_ours_f
    log(f"    from float32 features (dim {dim}), the distance product included on both sides: numpy ref "
        f"{t_ref_f:.2f} s, ours {t_ours_f:.2f} s, speed-up {ratio_f:.1f}x, max |difference| "
        f"{max_diff(ref_f, ours_f):.2e}")
    return {"ratio": ratio, "ref_seconds": t_ref, "ours_seconds": t_ours, "max_abs_difference": max_diff(ref, ours),
            "max_abs_difference_stable": max_diff(stable, ours), "ref_cpu_seconds": c_ref, "ours_cpu_seconds": c_ours,
            "mAP": ours["mAP"], "ratio_from_features": ratio_f, "ref_from_features_seconds": t_ref_f,
            "ours_from_features_seconds": t_ours_f}


def full_case(dim: int, dev: str, quality: str, log, check_queries: int = 300) -> dict:
    qf, gf, q_ids, g_ids, q_groups, g_groups = make_data(12361, 86006, dim, QUALITY[quality], seed=1)
    with RssSampler(every=0.05) as mem:
        full, t_full, c_full = timed(partial(reid_metrics_from_features, qf, gf, q_ids, g_ids, q_groups, g_groups,
                                             macro=True, device=dev))
    extra = (mem.peak - mem.before) / 2**10  # GiB the evaluation itself adds to the features
    sub = slice(0, check_queries)
    ref = market1501_reference(reference_distances(qf[sub].astype(np.float64), gf.astype(np.float64)),
                               q_ids[sub], g_ids, q_groups[sub], g_groups)
    ours = reid_metrics_from_features(qf[sub], gf, q_ids[sub], g_ids, q_groups[sub], g_groups, macro=False,
                                      device=dev)
    log(f"\n[2] Portrait250K size 12,361 x 86,006, dim {dim}, {quality} model, macro, from features: "
        f"{t_full:.1f} s wall, {c_full:.1f} s cpu; macro mAP {full['mAP']:.4f}, rank1 {full['rank1']:.4f}; "
        f"memory added to the {(qf.nbytes + gf.nbytes) / 2**30:.2f} GiB of features: {extra:.2f} GiB at most")
    log(f"    first {check_queries} queries vs the NumPy reference (float64 distances, micro): "
        f"max |difference| {max_diff(ref, ours):.2e}")
    return {"seconds": t_full, "cpu_seconds": c_full, "added_memory_gib": extra, "macro_mAP": full["mAP"], "macro_rank1": full["rank1"],
            "check_max_abs_difference": max_diff(ref, ours)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=1280, help="feature dim (hrnet_w32 FSS re-id slice: 1280)")
    ap.add_argument("--skip-full", action="store_true", help="skip the 12,361 x 86,006 runs")
    ap.add_argument("--full-only", action="store_true", help="only the 12,361 x 86,006 runs")
    ap.add_argument("--device", default=None, help="torch device for ours (default: cuda when present)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = ap.parse_args()
    dev = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = torch.cuda.get_device_name(0) if dev.startswith("cuda") else "none"
    log = (lambda *a: None) if args.json else print
    result: dict = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "device": dev, "gpu": gpu, "torch": torch.__version__, "numpy": np.__version__,
                    "load_average_before": os.getloadavg()[0]}
    log(f"machine: {result['machine']}, {result['cpus']} CPUs, device {dev} (GPU: {gpu}), torch {torch.__version__}, "
        f"numpy {np.__version__}, load average {result['load_average_before']:.1f}")
    if not args.full_only:
        for quality, key in (("paper", "good"), ("random", "weak")):
            small = small_case(args.dim, dev, quality, log)
            result[f"ratio_{key}"] = small["ratio"]
            result[f"small_{key}"] = small
    if not args.skip_full:
        for quality, key in (("paper", "good"), ("random", "weak")):
            result[f"full_{key}"] = full_case(args.dim, dev, quality, log)
        result["full_size_seconds"] = max(result["full_good"]["seconds"], result["full_weak"]["seconds"])
    result["load_average_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
