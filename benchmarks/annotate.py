"""Annotation app latency on a big store: p95 from a click (label committed) to the next crop shown.

Builds a 250,000-crop project with the shared generator benchmarks/bigstore.py (Core bulk inserts; a
few hundred distinct real JPEGs hard-linked under each crop's own path, since crop paths are unique),
pre-labels a random 30 % of the age queue and creates 20 characters per movie (exemplars labelled),
then drives the real widgets offscreen:

* attribute view (age): one value click -> set_label commit -> next leased crop -> its image painted;
* identity view: one exemplar click -> identity+gender commit -> next crop, its exemplar grid ordered
  by embedding similarity and its track strip -> painted. Crops are labelled in id order (whole-track
  labelling off), so from a track's second crop on the strip holds labelled crops too (drawn dimmed
  with a check mark, their names looked up): the strip's full cost is in the p95.

The same widget is then driven with a naive next-item (the whole crops and current_labels tables
read per click, image decoded on the UI thread: what a first version would do) and the script prints
both p95s and their ratio. Between clicks it waits for the prefetch pool to go idle (a person takes
far longer than that to look at a crop). Absolute timings are noisy on a shared machine.

    python benchmarks/annotate.py [--crops 250000] [--clicks 300] [--naive-clicks 20] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from bigstore import BigStoreSpec, naive_next_item  # noqa: E402
from bigstore import build as build_store  # noqa: E402

from portrait_builder.annotation import AnnotationService, add_annotator  # noqa: E402
from portrait_builder.store import Project  # noqa: E402

VIDEOS = 50
TRACK_LEN = 25
IDENTITIES_PER_VIDEO = 20
DISTINCT_IMAGES = 300
PRELABELLED = 0.3


def build(root: Path, n_crops: int, seed: int = 0) -> tuple[Project, dict]:
    """The shared generator (benchmarks/bigstore.py): 20 characters per movie, exemplars labelled, 30 % of age."""
    spec = BigStoreSpec(crops=n_crops, videos=VIDEOS, track_len=TRACK_LEN, identities_per_video=IDENTITIES_PER_VIDEO,
                        identified=0.0, coverage={"age": PRELABELLED}, labels=None, distinct_images=DISTINCT_IMAGES,
                        seed=seed)
    project, info = build_store(root, spec)
    add_annotator(project, "bench_age", "annotator", "age")
    add_annotator(project, "bench_id", "annotator", "identity")
    add_annotator(project, "seed", "maintainer")
    prelabelled = project.status()["attributes"]["age"]["labelled"]
    return project, {"crops": info.crops, "tracks": info.tracks, "build_s": info.seconds, "prelabelled": prelabelled}


def drive(window, click, n: int, *, naive: bool = False) -> np.ndarray:
    """Time ``n`` clicks: label committed, next crop fetched, its image painted."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    view = window.view
    times = []
    for _ in range(n):
        if view.item is None:
            break
        if naive:
            view.cache._images.clear()  # no prefetch in the naive version: decode on the UI thread
            view.cache._pixmaps.clear()
        t0, c0 = time.perf_counter(), time.thread_time()
        click(view)  # the label is committed inside this call, the next crop fetched and set
        app.processEvents()  # ... and here the window repaints: the next image is on screen
        times.append((time.perf_counter() - t0, time.thread_time() - c0))
        view.cache.wait_idle(1.0)
        app.processEvents()
    return np.asarray(times).reshape(-1, 2) * 1000.0  # columns: wall ms, UI-thread CPU ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=250_000)
    parser.add_argument("--clicks", type=int, default=300)
    parser.add_argument("--naive-clicks", type=int, default=20)
    parser.add_argument("--keep", metavar="DIR", help="build (or reuse) the project here instead of a temporary folder")
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from annotator_gui.app import AnnotationWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])  # noqa: F841 - must exist before widgets
    tmp = None
    if args.keep:
        root = Path(args.keep)
        if (root / "portrait.yaml").exists():
            project, info = Project.open(root), {"crops": args.crops, "build_s": 0.0, "prelabelled": "reused"}
        else:
            project, info = build(root, args.crops)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="pb-annotate-bench-"))
        project, info = build(tmp / "proj", args.crops)
    print()
    print(f"store: {info['crops']:,} crops, {VIDEOS} movies, {info['prelabelled']} age labels pre-set; "
          f"built in {info['build_s']:.1f} s ({project.engine.dialect.name})")

    results = {}
    try:
        age = AnnotationWindow(AnnotationService(project, "bench_age"))
        age.show()
        values = ["child", "teenager", "young_adult", "middle_aged", "elderly"]
        counter = iter(range(10**9))
        click_age = lambda view: view.value_buttons[values[next(counter) % 5]].click()  # noqa: E731
        drive(age, click_age, 5)  # warm-up
        results["attribute view (age)"] = drive(age, click_age, args.clicks)
        hits = (age.cache.hits, age.cache.misses)
        original = age.service.next_item
        age.service.next_item = lambda: naive_next_item(age.service)
        results["attribute view, naive next-item"] = drive(age, click_age, args.naive_clicks, naive=True)
        age.service.next_item = original
        age.close()

        ident = AnnotationWindow(AnnotationService(project, "bench_id"))
        ident.show()
        ident.view.whole_track.setChecked(False)
        click_id = lambda view: view.exemplar_buttons[0].click()  # noqa: E731
        drive(ident, click_id, 5)
        results["identity view (exemplar click)"] = drive(ident, click_id, max(args.clicks * 2 // 3, 1))
        original = ident.service.next_item
        ident.service.next_item = lambda: naive_next_item(ident.service)
        results["identity view, naive next-item"] = drive(ident, click_id, args.naive_clicks, naive=True)
        ident.service.next_item = original
        ident.close()
    finally:
        project.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (other work on this machine inflates wall times)")
    print(f"{'path':<36} {'clicks':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'UI-thread CPU p95 ms':>21}")
    for name, t in results.items():
        wall, cpu = t[:, 0], t[:, 1]
        print(f"{name:<36} {len(t):>6} {np.percentile(wall, 50):>8.1f} {np.percentile(wall, 95):>8.1f} "
              f"{wall.max():>8.1f} {np.percentile(cpu, 95):>21.1f}")
    for view in ("attribute view", "identity view"):
        ours = next(v for k, v in results.items() if k.startswith(view) and "naive" not in k)[:, 0]
        naive = next(v for k, v in results.items() if k.startswith(view) and "naive" in k)[:, 0]
        print(f"{view}: naive p95 / ours p95 = {np.percentile(naive, 95) / np.percentile(ours, 95):.1f}x "
              f"(target: ours p95 <= 50 ms: {'met' if np.percentile(ours, 95) <= 50 else 'NOT met'})")
    print(f"image cache (attribute view): {hits[0]} hits, {hits[1]} misses")
    sys.stdout.flush()
    # PySide6 can crash while the interpreter tears down Qt objects; the results are printed by now.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
