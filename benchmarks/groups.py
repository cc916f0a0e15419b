"""Near-duplicate grouping: multi-index (pigeonhole) search vs brute-force pairwise search.

Usage: python benchmarks/groups.py [--n 250000] [--sample 20000] [--threshold 8]

Synthetic clustered hashes (random 64-bit centres, members up to 7 random bit flips away, ~10 per
cluster, so chains across the threshold exist). Both methods run on the same ``--sample`` hashes and
must give identical groups; brute force on the full ``--n`` is extrapolated from the sample by n^2
(it is quadratic), ours is timed on the full set. One process, same machine; the development box is
shared and noisy, so repeat runs vary.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from threadpoolctl import threadpool_limits

    from portrait_builder.dedup import brute_force_groups, group_hashes
    from portrait_builder.dedup.groups import clustered_hashes

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=250_000)
    ap.add_argument("--sample", type=int, default=20_000)
    ap.add_argument("--threshold", type=int, default=8)
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    full = clustered_hashes(args.n, seed=1)
    sample = full[: args.sample]
    with threadpool_limits(1):
        t = time.perf_counter()
        ours_s = group_hashes(sample, args.threshold)
        t_ours_s = time.perf_counter() - t
        t = time.perf_counter()
        brute_s = brute_force_groups(sample, args.threshold)
        t_brute_s = time.perf_counter() - t
        t = time.perf_counter()
        ours_full = group_hashes(full, args.threshold)
        t_ours_full = time.perf_counter() - t
    same = np.array_equal(ours_s, brute_s)
    brute_full_est = t_brute_s * (args.n / args.sample) ** 2
    sizes = np.bincount(ours_full)
    print(f"sample {args.sample:,} hashes, T={args.threshold}: ours {t_ours_s:.2f} s, brute force {t_brute_s:.2f} s "
          f"({t_brute_s / t_ours_s:.1f}x); identical groups: {same}")
    print(f"full {args.n:,} hashes: ours {t_ours_full:.1f} s ({(sizes > 0).sum():,} groups, "
          f"{(sizes > 1).sum():,} with >1 member, largest {sizes.max()}); brute force extrapolated "
          f"{brute_full_est:.0f} s ({brute_full_est / t_ours_full:.0f}x)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
