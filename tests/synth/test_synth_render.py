"""Synthetic videos: ground truth layout, determinism, shots, and that the default HOG detector finds
the figures (recall at IoU 0.5 against the rendered ground truth)."""

from __future__ import annotations

import numpy as np

from portrait_builder.boxes import box_iou
from portrait_builder.detect import create_detector
from portrait_builder.synth import SynthConfig, render_frames, render_video
from portrait_builder.taxonomy import load_taxonomy
from portrait_builder.video import VideoReader, probe


def test_render_video_ground_truth(tmp_path):
    cfg = SynthConfig(num_frames=60, shot_starts=(30,), num_people=4, seed=5)
    gt = render_video(tmp_path / "s.mp4", cfg)
    info = probe(tmp_path / "s.mp4")
    assert (info.width, info.height, info.fps) == (480, 320, 10.0)
    assert sum(1 for _ in VideoReader(tmp_path / "s.mp4")) == 60
    mot = gt.mot
    assert mot.shape[1] == 10 and mot[:, 0].min() >= 1 and mot[:, 0].max() <= 60
    assert set(np.unique(mot[:, 1]).astype(int)) <= {1, 2, 3, 4} and len(np.unique(mot[:, 1])) >= 3
    assert (mot[:, 4] > 0).all() and (mot[:, 5] > 0).all() and ((mot[:, 8] >= 0) & (mot[:, 8] <= 1)).all()
    assert (mot[:, 8] < 0.9).any()  # someone is occluded at some point
    assert gt.shot_starts == [0, 30]
    assert {a[1] for a in gt.appearances} == {0, 1}  # people in both shots: identities reappear
    again = render_video(tmp_path / "t.mp4", cfg)
    np.testing.assert_array_equal(again.mot, mot)  # deterministic by seed
    tax = load_taxonomy(None)
    for p in gt.persons:
        for name, value in p.attributes.items():
            values = value if isinstance(value, list) else [value]
            assert set(values) <= set(tax.attribute(name).classes)
    text = gt.write_mot(tmp_path / "gt.txt").read_text().splitlines()
    assert len(text) == len(mot) and text[0].count(",") == 9


def test_default_hog_detector_finds_the_figures():
    cfg = SynthConfig(num_frames=60, shot_starts=(30,), seed=0)
    det = create_detector("hog")
    hits = total = false_pos = 0
    for t, frame, boxes in render_frames(cfg):
        if t % 2:
            continue
        g = np.array([b for _, b, vis in boxes if vis > 0.6 and b[0] > 2 and b[2] < cfg.width - 2]).reshape(-1, 4)
        d = det.detect([frame])[0]
        if len(g):
            iou = box_iou(g, d.xyxy) if len(d) else np.zeros((len(g), 1))
            hits += int((iou.max(1) >= 0.5).sum())
            total += len(g)
            false_pos += int((iou.max(0) < 0.3).sum()) if len(d) else 0
    recall = hits / total
    # Measured 0.31-0.35 on these seeds (docs/benchmarks.md); the floor leaves room for codec noise.
    assert recall >= 0.2, recall
    assert false_pos <= 0.2 * max(hits, 1)
