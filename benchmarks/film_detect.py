"""Person detection on film footage, scored against hand ground truth (../shared/data/movie/README.md).

(a) Each candidate detector alone on every labelled frame of the development clip (Tears of Steel,
    640x360): recall and precision at IoU >= 0.4, milliseconds per frame, and PETS09-S2L1 MOTA when
    the candidate drives the tracker (motmetrics, as tests/ingest and docs/benchmarks.md score it).
(b) The full default ingest (``ingest_video`` with a default ``IngestConfig`` and ``mot_out``, into a
    temporary project): the tracked boxes of every labelled frame of the development clip, and
    PETS09-S2L1 MOTA from the same default ingest of the PETS09 clip.

Scoring (the README's): on each labelled frame, boxes lying at least half inside an ignore region
(flag 0) are dropped; the rest are matched one-to-one to the flag-1 boxes (Hungarian assignment on
IoU, pairs below 0.4 never match); recall = matched / flag-1 boxes, precision = matched / kept boxes.
Timings are noisy on a shared machine: every candidate runs in this process on the same frames.

    python benchmarks/film_detect.py [--json] [--no-pets] [--no-ingest] [--candidates film hog ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import linear_sum_assignment

from portrait_builder.boxes import box_iou, xywh_to_xyxy
from portrait_builder.detect import create_detector
from portrait_builder.detect.types import Detections

if TYPE_CHECKING:  # the ingest stack is imported only by the run that ingests
    from portrait_builder.ingest import VideoReport

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEV = DATA / "movie" / "tears_of_steel"
PETS_VIDEO = DATA / "video" / "vtest_pets09_s2l1_480x360.avi"
PETS_GT = DATA / "mot" / "PETS09-S2L1" / "gt" / "gt.txt"
MATCH_IOU = 0.4

# name -> (registry name, options). "film" is the default; the others are its parts and the old default.
CANDIDATES: dict[str, tuple[str, dict]] = {
    "hog": ("hog", {}),
    "hog upscale 2": ("hog", {"upscale": 2.0}),
    "haar upper body": ("haar", {}),
    "ssdlite 0.5": ("film", {"faces": False, "person_threshold": 0.5}),
    "ssdlite 0.2": ("film", {"faces": False}),
    "faces anchored": ("film", {"persons": False}),
    "ssdlite 0.5 + faces": ("film", {"person_threshold": 0.5}),
    "ssdlite tiles 0.5 + faces": ("film", {"person_threshold": 0.5, "tiles": True}),
    "film without zoom": ("film", {"zoom": False}),
    "ssdlite 0.2 + faces (film)": ("film", {}),
}


class HaarUpperBody:
    """OpenCV's upper-body Haar cascade (a candidate only; not registered)."""

    def __init__(self):
        import cv2

        self._cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_upperbody.xml"))

    def detect(self, frames: list[np.ndarray]) -> list[Detections]:
        import cv2

        out = []
        for frame in frames:
            gray = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
            rects = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=3, minSize=(30, 30))
            boxes = np.asarray(rects, np.float32).reshape(-1, 4)
            boxes[:, 2:] += boxes[:, :2]
            out.append(Detections(boxes, np.ones(len(boxes), np.float32), np.zeros((len(boxes), 0), np.float32)))
        return out


def build(name: str):
    backend, options = CANDIDATES[name]
    return HaarUpperBody() if backend == "haar" else create_detector(backend, **options)


# --- ground truth and scoring ------------------------------------------------------------------
def read_gt(path: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """0-based frame index -> (flag-1 boxes (K, 4), ignore boxes (M, 4)), xyxy; every labelled frame
    (every 6th) is present, also those without rows (no person)."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    shots = json.loads((path.parent / "shots.json").read_text())
    out = {}
    for index in range(0, int(shots["frames"]), 6):
        r = rows[rows[:, 0] == index + 1]
        boxes = xywh_to_xyxy(r[:, 2:6]).astype(np.float32)
        out[index] = (boxes[r[:, 6] == 1], boxes[r[:, 6] == 0])
    return out


def score_frame(hyp: np.ndarray, positives: np.ndarray, ignore: np.ndarray) -> tuple[int, int, int]:
    """(matched, flag-1 boxes, counted hypotheses) of one labelled frame (see the module docstring)."""
    hyp = np.asarray(hyp, np.float32).reshape(-1, 4)
    if len(ignore) and len(hyp):
        iw = np.clip(np.minimum(hyp[:, None, 2], ignore[None, :, 2]) - np.maximum(hyp[:, None, 0], ignore[None, :, 0]), 0, None)
        ih = np.clip(np.minimum(hyp[:, None, 3], ignore[None, :, 3]) - np.maximum(hyp[:, None, 1], ignore[None, :, 1]), 0, None)
        area = np.maximum((hyp[:, 2] - hyp[:, 0]) * (hyp[:, 3] - hyp[:, 1]), 1e-6)
        hyp = hyp[~((iw * ih / area[:, None]) >= 0.5).any(axis=1)]
    matched = 0
    if len(hyp) and len(positives):
        iou = box_iou(positives, hyp)
        r, c = linear_sum_assignment(np.where(iou >= MATCH_IOU, -iou, 1.0))
        matched = int((iou[r, c] >= MATCH_IOU).sum())
    return matched, len(positives), len(hyp)


def summarise(counts: list[tuple[int, int, int]]) -> dict:
    m, g, h = (sum(c[i] for c in counts) for i in range(3))
    return {"recall": m / g if g else float("nan"), "precision": m / h if h else float("nan"), "matched": m, "gt": g, "boxes": h}


def read_frames(path: Path, indices: set[int]) -> dict[int, np.ndarray]:
    from portrait_builder.video import VideoReader

    out = {}
    with VideoReader(path) as reader:
        for f in reader:
            if f.index in indices:
                out[f.index] = f.image.copy()
    return out


# --- (a) candidates ----------------------------------------------------------------------------
def score_candidates(names: list[str], frames: dict[int, np.ndarray], gt: dict, pets_frames: int) -> list[dict]:
    """Every candidate on every labelled frame. Frame by frame, the candidates take turns, so that
    load from other processes falls on all of them alike; ms/frame is the median over frames."""
    detectors = {name: build(name) for name in names}
    # Warm-up outside the timing (graph allocation, lazy imports such as torchvision's NMS on the
    # first frame with a box): a frame from the middle of the clip has people.
    middle = list(frames.values())[len(frames) // 2]
    for det in detectors.values():
        det.detect([middle])
    counts = {name: [] for name in names}
    times = {name: [] for name in names}
    for index, image in frames.items():
        for name, det in detectors.items():
            t = time.perf_counter()
            d = det.detect([image])[0]
            times[name].append(time.perf_counter() - t)
            counts[name].append(score_frame(d.xyxy, *gt[index]))
    rows = []
    for name in names:
        row = {"candidate": name, **summarise(counts[name]), "ms_per_frame": 1000 * float(np.median(times[name]))}
        if pets_frames:
            row["pets09_mota"] = pets_mota_tracked(detectors[name], pets_frames)
        rows.append(row)
    base = next((r["ms_per_frame"] for r in rows if r["candidate"] == "hog"), None)
    for r in rows:
        r["time_vs_hog"] = r["ms_per_frame"] / base if base else None
    return rows


def pets_mota_tracked(detector, frames: int) -> float:
    """MOTA on the first ``frames`` frames of PETS09-S2L1 with ``detector`` feeding the JDE tracker
    (ingest.quality.track_video, as tests/ingest/test_ingest_tracking_quality.py)."""
    from portrait_builder.ingest.quality import track_video
    from portrait_builder.track.evaluate import mot_metrics, read_pets09_gt

    gt = read_pets09_gt(PETS_GT)
    hyp, _ = track_video(PETS_VIDEO, detector, max_frames=frames)
    return mot_metrics(gt[gt.frame <= frames], hyp)["mota"]


# --- (b) the full default ingest ---------------------------------------------------------------
def default_ingest(video: Path, tmp: Path) -> tuple[Path, VideoReport]:
    from portrait_builder.ingest import IngestConfig, ingest_video
    from portrait_builder.store import Project

    mot = tmp / f"{video.stem}.mot.txt"
    project = Project.init(tmp / f"project-{video.stem}")
    try:
        report = ingest_video(project, video, IngestConfig(mot_out=str(mot)), progress=False)
    finally:
        project.close()
    return mot, report


def score_ingest(gt: dict, tmp: Path, pets: bool) -> dict:
    from portrait_builder.ingest import IngestConfig
    from portrait_builder.track.evaluate import mot_metrics, read_mot, read_pets09_gt


    mot, report = default_ingest(DEV / "clip.mp4", tmp)
    rows = np.loadtxt(mot, delimiter=",", ndmin=2) if mot.stat().st_size else np.zeros((0, 7))
    counts = []
    for index, (pos, ign) in gt.items():
        r = rows[rows[:, 0] == index + 1]
        counts.append(score_frame(xywh_to_xyxy(r[:, 2:6]), pos, ign))
    out = {"detector": IngestConfig().detector, "dev": summarise(counts),
           "dev_realtime": report.frames_processed / report.seconds["wall"] / report.video.fps
           if report.seconds.get("wall") and report.video else None}
    if pets:
        mot, _ = default_ingest(PETS_VIDEO, tmp)
        m = mot_metrics(read_pets09_gt(PETS_GT), read_mot(mot, gt=False))
        out["pets09"] = {k: m[k] for k in ("mota", "idf1", "precision", "recall")}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    ap.add_argument("--no-pets", action="store_true", help="skip PETS09-S2L1 (MOTA per candidate and for the ingest)")
    ap.add_argument("--pets-frames", type=int, default=795, help="PETS09 frames each candidate tracks (the default ingest always runs all 795)")
    ap.add_argument("--no-ingest", action="store_true", help="skip (b), the full default ingest")
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES), metavar="NAME",
                    help=f"candidates to score (default: all): {', '.join(CANDIDATES)}")
    a = ap.parse_args()
    if not (DEV / "gt.txt").is_file():
        print(f"film_detect: {DEV} is missing (the shared data folder)", file=sys.stderr)
        return 2
    pets = not a.no_pets and PETS_VIDEO.is_file() and PETS_GT.is_file()
    gt = read_gt(DEV / "gt.txt")
    frames = read_frames(DEV / "clip.mp4", set(gt))
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip() + f", Python {platform.python_version()}, CPU only",
        "dev_clip": "tears_of_steel 640x360, labelled frames: " + str(len(frames)),
        "pets09_frames_per_candidate": a.pets_frames if pets else 0,
        "candidates": score_candidates(a.candidates, frames, gt, a.pets_frames if pets else 0),
    }
    if not a.no_ingest:
        with tempfile.TemporaryDirectory() as d:
            result["default_ingest"] = score_ingest(gt, Path(d), pets)
    if a.json:
        print(json.dumps(result))
        return 0
    print(result["machine"])
    print(f"{'candidate':<28} {'recall':>7} {'precision':>9} {'ms/frame':>9} {'x hog':>6} {'PETS09 MOTA':>12}")
    for r in result["candidates"]:
        mota = f"{r['pets09_mota']:.3f}" if "pets09_mota" in r else "-"
        ratio = f"{r['time_vs_hog']:.2f}" if r["time_vs_hog"] else "-"
        print(f"{r['candidate']:<28} {r['recall']:>7.3f} {r['precision']:>9.3f} {r['ms_per_frame']:>9.1f} {ratio:>6} {mota:>12}")
    if "default_ingest" in result:
        ing = result["default_ingest"]
        line = f"default ingest ({ing['detector']}): dev recall {ing['dev']['recall']:.3f} precision {ing['dev']['precision']:.3f}"
        if "pets09" in ing:
            line += f"; PETS09 MOTA {ing['pets09']['mota']:.3f} IDF1 {ing['pets09']['idf1']:.3f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
