"""Re-id evaluation speed: ours (portrait_builder.evaluate) vs a straightforward NumPy Market-1501
evaluation (torchreid's eval_market1501 logic, pHash-group exclusion instead of same-camera), in one run.

1. 2,000 queries x 20,000 gallery, same distance matrix for both: time, and the numbers side by side.
2. The same from features (distance computation included on both sides).
3. Ours alone at the Portrait250K test size, 12,361 x 86,006 (the NumPy reference would need a
   12,361 x 86,006 float64 matrix, 8.5 GB, plus its argsort indices; it is not run).

Usage: python benchmarks/evaluate.py [--dim 1280] [--skip-full] [--device cpu|cuda]
Absolute times on a shared machine are noisy; the ratio is measured in the same process.
"""

from __future__ import annotations

import argparse
import platform
import time
from functools import partial

import numpy as np
import torch

from portrait_builder.evaluate import reid_metrics, reid_metrics_from_features
from portrait_builder.evaluate.reference import market1501_reference

reference_eval = partial(market1501_reference, sort_kind="quicksort")  # as torchreid sorts


def reference_distances(qf, gf):
    q2 = (qf * qf).sum(1)[:, None]
    g2 = (gf * gf).sum(1)[None, :]
    return np.maximum(q2 + g2 - 2.0 * qf @ gf.T, 0)


def make_data(nq, ng, n_ids, dim, seed=0, noise=1.3):
    """Clustered features: each identity a random centre, crops = centre + noise; 20% of the gallery
    unidentified (-1); pHash groups of ~3 crops over query+gallery."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim)).astype(np.float32)
    q_ids = rng.integers(0, n_ids, nq)
    g_ids = rng.integers(0, n_ids, ng)
    qf = centres[q_ids] + noise * rng.normal(size=(nq, dim)).astype(np.float32)
    gf = centres[g_ids] + noise * rng.normal(size=(ng, dim)).astype(np.float32)
    g_ids = np.where(rng.random(ng) < 0.2, -1, g_ids)
    q_groups = rng.integers(0, (nq + ng) // 3, nq)
    g_groups = rng.integers(0, (nq + ng) // 3, ng)
    g_groups[rng.random(ng) < 0.5] = -1
    return qf, gf, q_ids, g_ids, q_groups, g_groups


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=1280, help="feature dim (hrnet_w32 FSS re-id slice: 1280)")
    ap.add_argument("--skip-full", action="store_true", help="skip the 12,361 x 86,006 run")
    ap.add_argument("--full-only", action="store_true", help="only the 12,361 x 86,006 run")
    ap.add_argument("--device", default=None, help="torch device for ours (default: cuda when present)")
    args = ap.parse_args()
    dev = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = torch.cuda.get_device_name(0) if dev.startswith("cuda") else "none"
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"device {dev} (GPU: {gpu}), torch {torch.__version__}, numpy {np.__version__}")

    for label, noise in (() if args.full_only else (("good model", 1.3), ("weak model", 4.0))):
        qf, gf, q_ids, g_ids, q_groups, g_groups = make_data(2000, 20000, 500, args.dim, noise=noise)
        dist = reference_distances(qf.astype(np.float64), gf.astype(np.float64))
        ref, t_ref = timed(partial(reference_eval, dist, q_ids, g_ids, q_groups, g_groups))
        reid_metrics(dist[:10], q_ids[:10], g_ids, q_groups[:10], g_groups, macro=False, device=dev)  # warm-up
        ours, t_ours = timed(partial(reid_metrics, dist, q_ids, g_ids, q_groups, g_groups, macro=False, device=dev))
        print(f"\n[1] 2,000 x 20,000, {label}, same float64 distance matrix (micro = standard Market-1501)")
        print(f"{'':10}{'rank1':>10}{'rank5':>10}{'rank10':>10}{'mAP':>10}{'seconds':>10}")
        for name, r, t in (("numpy ref", ref, t_ref), ("ours", ours, t_ours)):
            print(f"{name:10}" + "".join(f"{r[k]:10.6f}" for k in ("rank1", "rank5", "rank10", "mAP")) + f"{t:10.3f}")
        diff = max(abs(ref[k] - ours[k]) for k in ref)
        print(f"max |difference| = {diff:.2e}; speed-up = {t_ref / t_ours:.1f}x")
    qf, gf, q_ids, g_ids, q_groups, g_groups = make_data(2000, 20000, 500, args.dim)

    if args.full_only:
        return full_size(args.dim, dev)
    ref_f, t_ref_f = timed(lambda: reference_eval(reference_distances(qf, gf), q_ids, g_ids, q_groups, g_groups))
    ours_f, t_ours_f = timed(lambda: reid_metrics_from_features(qf, gf, q_ids, g_ids, q_groups, g_groups,
                                                                macro=False, device=dev))
    print(f"\n[2] from float32 features (dim {args.dim}), distances included: numpy ref {t_ref_f:.2f} s, "
          f"ours {t_ours_f:.2f} s, speed-up {t_ref_f / t_ours_f:.1f}x, "
          f"max |difference| {max(abs(ref_f[k] - ours_f[k]) for k in ref_f):.2e}")
    macro, t_macro = timed(lambda: reid_metrics_from_features(qf, gf, q_ids, g_ids, q_groups, g_groups,
                                                              macro=True, device=dev))
    print(f"    macro (per identity first): mAP {macro['mAP']:.4f} rank1 {macro['rank1']:.4f} ({t_macro:.2f} s)")

    if not args.skip_full:
        full_size(args.dim, dev)


def full_size(dim: int, dev: str) -> None:
    qf, gf, q_ids, g_ids, q_groups, g_groups = make_data(12361, 86006, 426, dim, seed=1)
    full, t_full = timed(partial(reid_metrics_from_features, qf, gf, q_ids, g_ids, q_groups, g_groups,
                                 macro=True, device=dev))
    print(f"\n[3] Portrait250K size 12,361 x 86,006, dim {dim}, macro, ours from features: {t_full:.1f} s "
          f"(mAP {full['mAP']:.4f}); the full matrix would be {12361 * 86006 * 4 / 2**30:.1f} GiB in float32, "
          "never materialised (chunks of queries)")

if __name__ == "__main__":
    main()
