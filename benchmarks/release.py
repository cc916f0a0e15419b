"""Benchmark: `portrait release` on a generated 250,000-crop store (SQLite), with progress bars.

The store comes from the shared generator benchmarks/bigstore.py: bulk Core inserts; the crop files are
hard links to a few hundred distinct small JPEGs (a real ingest writes one file per crop; the release
cost per file is the same). Labels go straight into ``labels``/``current_labels`` (the benchmark
measures the release, not add_label); the split is the library's ``split_project``.
Printed: generation time, release time (hard links), the same release with copies, verify, and a
reference measured in the same process: a bare loop hard-linking the same files (the floor of any
writer that has to create 250,000 directory entries).

    python benchmarks/release.py [--crops 250000] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bigstore import BigStoreSpec, build
from sqlalchemy import select

from portrait_builder.release import ReleaseConfig, verify_release, write_release
from portrait_builder.split import SplitConfig, split_project
from portrait_builder.store import Project
from portrait_builder.store.models import Crop

CROPS_PER_TRACK = 10
VIDEOS = 20
IDENTITY_SHARE = 0.4  # the paper: over 60% of crops have no identity


def generate(root: Path, n: int, seed: int = 0) -> Project:
    """The shared generator (benchmarks/bigstore.py), then the library's split (release needs one)."""
    spec = BigStoreSpec(crops=n, videos=VIDEOS, track_len=CROPS_PER_TRACK,
                        identities_per_video=max(2, n // CROPS_PER_TRACK // 50 // VIDEOS), identified=IDENTITY_SHARE,
                        coverage={"age": 1.0, "expression": 1.0}, labels=None, seed=seed)
    project, _ = build(root, spec)
    split_project(project, SplitConfig(seed=seed))
    return project


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", type=int, default=250_000)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir, removed)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pb-release-bench-", dir=args.work))
    try:
        t0 = time.perf_counter()
        project = generate(work / "proj", args.crops)
        t_gen = time.perf_counter() - t0
        print(f"generated {args.crops} crops in {t_gen:.1f}s", file=sys.stderr)

        t0 = time.perf_counter()
        write_release(project, "1.0.0", work / "rel-link", ReleaseConfig(progress=True, link="auto"))
        t_link = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_release(project, "1.0.0", work / "rel-copy", ReleaseConfig(progress=True, link="copy"))
        t_copy = time.perf_counter() - t0
        same = (work / "rel-link/manifest.json").read_bytes() == (work / "rel-copy/manifest.json").read_bytes()
        t0 = time.perf_counter()
        problems = verify_release(work / "rel-link", progress=True)
        t_verify = time.perf_counter() - t0

        # reference: the bare minimum of linking every crop into a fresh folder tree
        from portrait_builder.release import load_release

        files = load_release(work / "rel-link").annotations
        with project.session() as s:
            path_of = dict(s.execute(select(Crop.id, Crop.path)).all())
        srcs = [project.crop_root / path_of[c] for c in files["crop_id"].tolist()]
        ref = work / "ref"
        for d in ("bounding_box_train", "query", "bounding_box_test"):
            (ref / d).mkdir(parents=True)
        t0 = time.perf_counter()
        for s, f in zip(srcs, files["file"], strict=True):
            os.link(s, ref / f)
        t_ref = time.perf_counter() - t0

        n = len(files)
        print(f"crops released              {n}")
        print(f"release (hard links)        {t_link:8.1f} s  {n / t_link:9.0f} crops/s")
        print(f"release (copies)            {t_copy:8.1f} s  {n / t_copy:9.0f} crops/s")
        print(f"verify                      {t_verify:8.1f} s  problems: {len(problems)}")
        print(f"reference: bare os.link loop {t_ref:7.1f} s  -> release/reference = {t_link / t_ref:.1f}x")
        print(f"manifests identical (link vs copy): {same}")
        return 0 if not problems and same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
