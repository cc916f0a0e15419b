"""Detect + track a video without a store, giving MOTChallenge-style tables (for quality measurements).

``track_video`` returns the tracker's boxes and, as the untracked baseline, the raw detections with
every detection its own id. Frames are MOTChallenge 1-based (video frame index + 1).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from portrait_builder.video import VideoReader

_COLS = ["frame", "id", "x", "y", "w", "h", "conf", "ignore"]


def _frame(rows: list) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=_COLS[:-1])
    df["ignore"] = False
    return df.astype({"frame": int, "id": int})


def track_video(path: str | Path, detector, *, tracker_config=None, shot_cuts: bool = True, max_frames: int | None = None,
                shot_detector: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tracked, untracked) DataFrames with columns frame, id, x, y, w, h, conf, ignore.

    Every frame is detected at source size; the tracker resets at the cuts the ingest's shot detector
    (``shot_detector``, None: the default) finds on the whole file, as in ingest.
    """
    from portrait_builder.track import DEFAULT_SHOT_DETECTOR, JDETracker, detect_shot_cuts

    reader = VideoReader(path)
    tracker = JDETracker(tracker_config, frame_rate=reader.info.fps)
    cuts = set(detect_shot_cuts(path, shot_detector or DEFAULT_SHOT_DETECTOR)) if shot_cuts else set()
    tracked, raw = [], []
    next_raw = 1
    with reader:
        for f in reader:
            if max_frames is not None and f.index >= max_frames:
                break
            dets = detector.detect([f.image])[0]
            if f.index in cuts:
                tracker.reset()
            out = tracker.update(dets)
            for b, s in zip(dets.xyxy, dets.scores, strict=True):
                raw.append((f.index + 1, next_raw, b[0], b[1], b[2] - b[0], b[3] - b[1], float(s)))
                next_raw += 1
            for b, s, i in zip(out.xyxy, out.scores, out.track_ids, strict=True):
                tracked.append((f.index + 1, int(i), b[0], b[1], b[2] - b[0], b[3] - b[1], float(s)))
    return _frame(tracked), _frame(raw)
