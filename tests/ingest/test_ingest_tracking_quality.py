"""Tracking quality with the HOG detector and the JDE tracker, scored with motmetrics
(portrait_builder.track.evaluate) against ground truth; the untracked baseline (every detection its own
id, same detections) is computed in the same test."""

from __future__ import annotations

import pytest

from portrait_builder.detect import create_detector
from portrait_builder.ingest.quality import track_video
from portrait_builder.synth import SynthConfig, render_video
from portrait_builder.track.evaluate import mot_metrics, read_mot, read_pets09_gt


def test_synthetic_tracking_beats_untracked(tmp_path):
    gt = render_video(tmp_path / "q.mp4", SynthConfig(num_frames=100, seed=0))
    g = read_mot(gt.write_mot(tmp_path / "gt.txt"))
    hyp, raw = track_video(tmp_path / "q.mp4", create_detector("hog"))
    tracked, untracked = mot_metrics(g, hyp), mot_metrics(g, raw)
    # measured: MOTA 0.81 / IDF1 0.49 vs untracked 0.01 / 0.01; IDF1 is capped near 0.53 on this clip because
    # the tracker restarts at the shot cut while ground-truth ids carry over (tests/synth scores per shot)
    assert tracked["mota"] >= 0.6 and tracked["idf1"] >= 0.4
    assert tracked["mota"] > untracked["mota"] + 0.5 and tracked["idf1"] > 10 * max(untracked["idf1"], 0.01)


@pytest.mark.slow
def test_pets09_tracking_beats_untracked(shared_data):
    frames = 150  # the full 795 frames: MOTA 0.62, IDF1 0.58 (docs/benchmarks.md); a prefix keeps CI short
    g = read_pets09_gt(shared_data / "mot/PETS09-S2L1/gt/gt.txt")
    g = g[g.frame <= frames]
    hyp, raw = track_video(shared_data / "video/vtest_pets09_s2l1_480x360.avi", create_detector("hog", upscale=2.0), max_frames=frames)
    tracked, untracked = mot_metrics(g, hyp), mot_metrics(g, raw)
    assert tracked["mota"] >= 0.4 and tracked["idf1"] >= 0.4
    assert untracked["idf1"] < 0.1 and tracked["mota"] > untracked["mota"] + 0.3
