"""Benchmark: `portrait release` on a generated 250,000-crop store (SQLite), with progress bars.

The store is filled with bulk Core inserts; the crop files are hard links to a few hundred distinct
small JPEGs (a real ingest writes one file per crop; the release cost per file is the same). Labels
go straight into ``labels``/``current_labels`` (the benchmark measures the release, not add_label).
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

import imagehash
import numpy as np
from PIL import Image
from sqlalchemy import insert

from portrait_builder.release import ReleaseConfig, verify_release, write_release
from portrait_builder.store import Project
from portrait_builder.store.models import Crop, CurrentLabel, Identity, Label, Setting, SplitAssignment, Track, Video

DISTINCT_IMAGES = 300
CROPS_PER_TRACK = 10
VIDEOS = 20
IDENTITY_SHARE = 0.4  # the paper: over 60% of crops have no identity


def generate(root: Path, n: int, rng: np.random.Generator) -> Project:
    project = Project.init(root)
    tax = project.taxonomy
    src = root / "distinct"
    src.mkdir()
    hashes = []
    for i in range(DISTINCT_IMAGES):
        small = rng.integers(0, 256, size=(16, 8, 3), dtype=np.uint8)
        path = src / f"{i}.jpg"
        Image.fromarray(small).resize((128, 256), Image.NEAREST).save(path, quality=85)
        h = int(str(imagehash.phash(Image.open(path))), 16)
        hashes.append(h - (1 << 64) if h >= 1 << 63 else h)
    n_tracks = n // CROPS_PER_TRACK
    tracks_per_video = n_tracks // VIDEOS
    n_ids = max(4, n_tracks // 50)  # ~50 tracks (500 crops) per identity across its movie
    ages = [v for v in tax.attribute("age").value_names]
    genders = ["male", "female", "unsure"]
    exprs = ["neutral", "happiness", "sadness|surprise", "unsure", "anger"]
    with project.engine.begin() as conn:
        conn.execute(insert(Video), [
            {"id": v + 1, "path": f"/m/{v}.mp4", "fingerprint": f"{v + 1:064x}", "title": f"Movie {v + 1}",
             "status": "done", "last_committed_frame": 10**6, "created_at": 0.0} for v in range(VIDEOS)])
        conn.execute(insert(Identity), [
            {"id": i + 1, "video_id": i % VIDEOS + 1, "name": f"id{i}", "created_at": 0.0} for i in range(n_ids)])
        conn.execute(insert(Track), [
            {"id": t + 1, "video_id": t // tracks_per_video % VIDEOS + 1, "tracker_id": t + 1, "first_frame": 0,
             "last_frame": 10, "shot_index": (t // 7) % 40} for t in range(n_tracks)])  # fmt: skip
        crops, labels, current, split = [], [], [], []
        label_id = 0
        train_ids = set(range(1, n_ids + 1, 2))
        query_done: set[int] = set()
        for c in range(n_tracks * CROPS_PER_TRACK):
            t = c // CROPS_PER_TRACK
            video = t // tracks_per_video % VIDEOS + 1
            img = (c * 7 + t) % DISTINCT_IMAGES
            crops.append({"id": c + 1, "video_id": video, "track_id": t + 1, "frame_index": c, "x1": 1.0,
                          "y1": 2.0, "x2": 65.0, "y2": 200.0, "path": f"c/{c // 1000}/{c}.jpg",
                          "phash": hashes[img], "phash_group": img})  # fmt: skip
            identity = None
            if (t % 10) < IDENTITY_SHARE * 10:
                # identities live in one movie: pick among that movie's identities
                identity = video + VIDEOS * ((t // VIDEOS) % max(1, n_ids // VIDEOS))
                identity = identity if identity <= n_ids else video
            values = {"age": ages[c % len(ages)], "gender": genders[c % 3], "expression": exprs[c % 5]}
            if identity is not None:
                values["identity"] = str(identity)
            for attr, value in values.items():
                label_id += 1
                labels.append({"id": label_id, "crop_id": c + 1, "attribute": attr, "value": value,
                               "source": "synthetic", "created_at": 0.0})  # fmt: skip
                current.append({"crop_id": c + 1, "attribute": attr, "value": value, "label_id": label_id})
            if identity is None:
                subset = "train" if c % 2 else "gallery"
            elif identity in train_ids:
                subset = "train"
            elif identity not in query_done or c % 25 == 0:
                subset = "query"
                query_done.add(identity)
            else:
                subset = "gallery"
            split.append({"split": "default", "crop_id": c + 1, "subset": subset})
        for table, rows in ((Crop, crops), (Label, labels), (CurrentLabel, current), (SplitAssignment, split)):
            for start in range(0, len(rows), 50_000):
                conn.execute(insert(table), rows[start : start + 50_000])
        conn.execute(insert(Setting), [{"key": "phash_groups", "value": {"threshold": 0, "within_video": False}}])
    for row in crops:
        dst = project.crop_root / row["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        c = row["id"] - 1
        os.link(src / f"{(c * 7 + c // CROPS_PER_TRACK) % DISTINCT_IMAGES}.jpg", dst)
    return project


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", type=int, default=250_000)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir, removed)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pb-release-bench-", dir=args.work))
    try:
        t0 = time.perf_counter()
        project = generate(work / "proj", args.crops, np.random.default_rng(0))
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
        srcs = [project.crop_root / f"c/{(c - 1) // 1000}/{c - 1}.jpg" for c in files["crop_id"]]
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
