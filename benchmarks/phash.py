"""pHash throughput: ours (batched, imagehash-identical) vs ``imagehash.phash`` in a loop, same files.

Usage: python benchmarks/phash.py [--n 2000] [--repeats 5] [--workers 2]

Two image sets: (a) crops as the store keeps them (256x128 JPEG, quality 90, cut from the real frames
in ../shared/data, or rendered when it is absent); (b) the real crops of ../shared/data at their native
sizes (Market-1501 128x64, CAVIAR). Runs are interleaved (reference, ours, reference, ...) and the
fastest of ``--repeats`` is kept for each, because the development box is shared and noisy; the
ratio is per image. Every run checks that both give the same hashes.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def make_store_crops(out: Path, n: int, seed: int = 0) -> list[Path]:
    from PIL import Image

    from portrait_builder.testing.stats_sample import _base_images

    rng = np.random.default_rng(seed)
    bases = _base_images(min(n, 400), rng, SHARED if SHARED.is_dir() else None)
    paths = []
    for i in range(n):
        img = np.clip(bases[i % len(bases)].astype(np.int16) + rng.integers(-3, 4, bases[0].shape), 0, 255)
        p = out / f"crop_{i:06d}.jpg"
        Image.fromarray(img.astype(np.uint8)).save(p, quality=90)
        paths.append(p)
    return paths


def native_crops(n: int) -> list[Path]:
    files = sorted((SHARED / "person_crops").glob("*/*.jpg")) + sorted((SHARED / "market1501_fullframes" / "query").glob("*.jpg"))
    return [files[i % len(files)] for i in range(n)] if files else []


def run(paths: list[Path], repeats: int, workers: int) -> dict:
    import imagehash
    from PIL import Image

    from portrait_builder.dedup import hash_to_hex, phash_files
    from portrait_builder.dedup.phash import _decode_fast

    ref_times, our_times, our1_times, dec_times = [], [], [], []
    # The first call starts the worker processes (once per Python process): timed on its own.
    t = time.perf_counter()
    phash_files(paths, workers=workers)
    cold = time.perf_counter() - t
    ref = ours = None
    for _ in range(repeats):
        t = time.perf_counter()
        ref = [str(imagehash.phash(Image.open(p))) for p in paths]
        ref_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        ours = phash_files(paths, workers=workers)
        our_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        phash_files(paths, workers=1)
        our1_times.append(time.perf_counter() - t)
        # The floor: reading and decoding the files to the exact pixels, nothing else (one process).
        t = time.perf_counter()
        for p in paths:
            _decode_fast(os.fspath(p))
        dec_times.append(time.perf_counter() - t)
    identical = [hash_to_hex(h) for h in ours] == ref
    n = len(paths)
    return {
        "n": n,
        "imagehash_us": min(ref_times) / n * 1e6,
        "ours_us": min(our_times) / n * 1e6,
        "cold_s": cold,
        "ours_1thread_us": min(our1_times) / n * 1e6,
        "decode_us": min(dec_times) / n * 1e6,
        "ratio": min(ref_times) / min(our_times),
        "ratio_1thread": min(ref_times) / min(our1_times),
        "identical": identical,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"store crops 256x128 JPEG": make_store_crops(Path(tmp), args.n)}
        native = native_crops(args.n)
        if native:
            sets["native-size real crops"] = native
        for name, paths in sets.items():
            r = run(paths, args.repeats, args.workers)
            print(f"{name}: {r['n']} images; imagehash loop {r['imagehash_us']:.0f} us/image; ours "
                  f"{r['ours_us']:.0f} us/image with {args.workers} processes ({r['ratio']:.1f}x; first call "
                  f"{r['cold_s']:.2f} s with pool start), "
                  f"{r['ours_1thread_us']:.0f} us/image with 1 ({r['ratio_1thread']:.1f}x); "
                  f"bit-identical: {r['identical']}; read + decode alone {r['decode_us']:.0f} us/image, so "
                  f"{args.workers} processes cannot beat {r['imagehash_us'] * args.workers / r['decode_us']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
