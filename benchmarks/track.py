"""Tracker update throughput: the vectorised JDETracker vs the same algorithm with naive per-pair
Python loops for every cost (embedding distance, Mahalanobis gate, IoU) and per-track Kalman steps.

Both run in this process on the same synthetic scene (people random-walking, JDE-sized 512-d
embeddings, some misses); the script checks both produce identical track ids and prints frames/s and
the ratio. Absolute timings are noisy on a shared machine; the ratio is the figure to quote.

    python benchmarks/track.py [--people 20 60] [--frames 200] [--dim 512]
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from types import SimpleNamespace
from unittest import mock

import numpy as np

from portrait_builder.detect.types import Detections
from portrait_builder.track import JDETracker, KalmanFilter, matching
from portrait_builder.track import tracker as tracker_module


def scene(people: int, frames: int, dim: int, seed: int = 0) -> list[Detections]:
    rng = np.random.default_rng(seed)
    pos = rng.uniform([50, 100], [1800, 900], size=(people, 2))
    vel = rng.normal(0, 3, size=(people, 2))
    height = rng.uniform(80, 300, people)
    identity = rng.normal(size=(people, dim)).astype(np.float32)
    out = []
    for _ in range(frames):
        pos += vel
        vel += rng.normal(0, 0.3, size=vel.shape)
        seen = rng.uniform(size=people) > 0.05
        h = height[seen] * rng.uniform(0.97, 1.03, seen.sum())
        c = pos[seen] + rng.normal(0, 2, size=(seen.sum(), 2))
        boxes = np.column_stack([c[:, 0] - 0.2 * h, c[:, 1] - 0.5 * h, c[:, 0] + 0.2 * h, c[:, 1] + 0.5 * h])
        emb = identity[seen] + rng.normal(0, 0.3, size=(seen.sum(), dim)).astype(np.float32)
        out.append(Detections(boxes, rng.uniform(0.5, 1.0, seen.sum()), matching.l2_normalise(emb)))
    return out


# --- the naive reference: same maths, one pair (or one track) at a time ------------------------
def naive_iou_distance(a, b):
    out = np.ones((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = iw * ih
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            out[i, j] = 1.0 - inter / max(union, 1e-9)
    return out


def naive_embedding_distance(a, b):
    out = np.zeros((len(a), len(b)))
    if len(a) and len(b) and a.shape[1]:
        for i in range(len(a)):
            for j in range(len(b)):
                out[i, j] = math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a[i], b[j], strict=True)))
    return out


class NaiveKalman(KalmanFilter):
    """Loops over tracks and measurements; explicit inverse per track."""

    def predict(self, mean, covariance):
        pairs = [KalmanFilter.predict(self, m[None], c[None]) for m, c in zip(mean, covariance, strict=True)]
        return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])

    def update(self, mean, covariance, measurement):
        pairs = [
            KalmanFilter.update(self, m[None], c[None], z[None])
            for m, c, z in zip(mean, covariance, measurement, strict=True)
        ]
        return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])

    def gating_distance(self, mean, covariance, measurements, only_position=False):
        out = np.zeros((len(mean), len(measurements)))
        for i in range(len(mean)):
            pm, pc = self.project(mean[i : i + 1], covariance[i : i + 1])
            inv = np.linalg.inv(pc[0])
            for j, z in enumerate(measurements):
                d = z - pm[0]
                out[i, j] = float(d @ inv @ d)
        return out


def run(dets: list[Detections], naive: bool) -> tuple[float, list[np.ndarray]]:
    tracker = JDETracker(frame_rate=30.0)
    ids = []
    if naive:
        tracker.kalman = NaiveKalman()
        fake = SimpleNamespace(
            iou_distance=naive_iou_distance,
            embedding_distance=naive_embedding_distance,
            l2_normalise=matching.l2_normalise,
            fuse_motion=matching.fuse_motion,
            linear_assignment=matching.linear_assignment,
        )
        patch = mock.patch.object(tracker_module, "matching", fake)
    else:
        patch = mock.patch.object(tracker_module, "matching", matching)
    with patch:
        start = time.perf_counter()
        for d in dets:
            ids.append(tracker.update(d).track_ids)
        elapsed = time.perf_counter() - start
    return len(dets) / elapsed, ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, nargs="+", default=[20, 60])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, CPU only")
    print(f"{'people':>6} {'frames':>6} {'vectorised fps':>15} {'naive fps':>10} {'ratio':>7}  ids equal")
    for people in args.people:
        dets = scene(people, args.frames, args.dim)
        fast, ids_fast = run(dets, naive=False)
        slow, ids_slow = run(dets, naive=True)
        same = all(np.array_equal(a, b) for a, b in zip(ids_fast, ids_slow, strict=True))
        print(f"{people:>6} {args.frames:>6} {fast:>15.1f} {slow:>10.1f} {fast / slow:>6.1f}x  {same}")


if __name__ == "__main__":
    main()
