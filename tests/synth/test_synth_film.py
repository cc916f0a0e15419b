"""What films have, in the synthetic generator: fades through black and dissolves (pixels and ground
truth checked against the same clip rendered with hard cuts, which shares its layout), close-ups, people
entering from the frame's edge, and the configuration errors."""

from __future__ import annotations

import numpy as np
import pytest

from portrait_builder.errors import UserError
from portrait_builder.synth import SynthConfig, render_frames, render_video

SMALL = dict(width=128, height=96, fps=24.0, num_frames=60, num_people=2, min_person_height=40, max_person_height=50,
             min_speed=1.5, max_speed=3.0, seed=4)  # fmt: skip


def _render(cfg: SynthConfig):
    return list(render_frames(cfg))


def test_fade_and_dissolve_pixels_and_ground_truth(tmp_path):
    cfg = SynthConfig(**SMALL, shot_starts=(20, 40), transitions=("fade", "dissolve"), transition_frames=8)
    hard = _render(SynthConfig(**SMALL, shot_starts=(20, 40)))  # the same plan and backgrounds, hard cuts
    soft = _render(cfg)
    gt = render_video(tmp_path / "t.mp4", cfg)
    assert gt.cuts == [20, 40] and gt.shot_starts == [0, 20, 40]
    assert gt.transitions == [("fade", 16, 20, 23), ("dissolve", 36, 40, 43)]
    assert gt.to_dict()["transitions"] == [["fade", 16, 20, 23], ["dissolve", 36, 40, 43]]
    inside = set(range(16, 24)) | set(range(36, 44))
    for t in range(60):
        (_, a, boxes_a), (_, b, boxes_b) = hard[t], soft[t]
        if t not in inside:
            np.testing.assert_array_equal(a, b)
            assert [(p, v) for p, _, v in boxes_a] == [(p, v) for p, _, v in boxes_b]
    # Fade: each frame is the hard-cut frame times its weight (out over 16-19, in over 20-23), rounded;
    # the ground truth keeps the boxes of the shot the frame belongs to, visibility times that weight.
    for t in range(16, 24):
        w = (20 - t - 0.5) / 4 if t < 20 else (t - 20 + 0.5) / 4
        expected = np.rint(w * hard[t][1].astype(np.float32))
        assert np.abs(soft[t][1].astype(np.float32) - expected).max() <= 1
        assert [p for p, _, _ in soft[t][2]] == [p for p, _, _ in hard[t][2]]
        for (_, box_s, vis_s), (_, box_h, vis_h) in zip(soft[t][2], hard[t][2], strict=True):
            np.testing.assert_array_equal(box_s, box_h)
            assert vis_s == pytest.approx(w * vis_h)
    brightness = [float(f.mean()) for _, f, _ in soft[14:26]]
    assert min(brightness) < 0.15 * brightness[0] and int(np.argmin(brightness)) + 14 in (19, 20)
    # Dissolve: the picture moves away from the outgoing shot frame by frame; from the cut frame on the
    # incoming shot weighs more, so the frame is nearer the hard-cut version (which shows that shot).
    diffs = [float(np.abs(soft[t][1].astype(np.float32) - hard[t][1]).mean()) for t in range(36, 44)]
    assert diffs[0] < diffs[3] and diffs[4] < diffs[3] and diffs[7] < diffs[4]
    assert all(v <= 1 for _, _, v in soft[39][2]) and {p for p, _, _ in soft[40][2]} == {p for p, _, _ in hard[40][2]}


def test_close_up_fills_the_frame_with_head_and_shoulders():
    cfg = SynthConfig(**SMALL, shot_starts=(30,), close_ups=(1,))
    frames = _render(cfg)
    for t, _, boxes in frames[30:]:
        assert len(boxes) == 1, t  # one person, filmed from the chest up
        x1, y1, x2, y2 = boxes[0][1]
        assert y1 < 0.2 * cfg.height and y2 == cfg.height and (y2 - y1) > 0.8 * cfg.height, (t, boxes[0][1])
        assert x2 - x1 > 0.35 * cfg.width and boxes[0][2] == 1.0
    wide = [b for _, _, boxes in frames[:30] for _, b, _ in boxes]
    assert wide and max(b[3] - b[1] for b in wide) < 0.6 * cfg.height  # the shot before: full figures
    assert len({p for _, _, boxes in frames[30:] for p, _, _ in boxes}) == 1


def test_a_person_enters_from_the_edge_after_each_shot_begins():
    cfg = SynthConfig(**SMALL, shot_starts=(30,), edge_entrance=True)
    frames = _render(cfg)
    for s0, s1 in ((0, 30), (30, 60)):
        first_seen: dict[int, tuple[int, np.ndarray]] = {}
        for t, _, boxes in frames[s0:s1]:
            for pid, box, _ in boxes:
                first_seen.setdefault(pid, (t, box))
        entering = [(t, b) for t, b in first_seen.values() if t > s0 and (b[0] <= 0 or b[2] >= cfg.width)]
        assert entering, (s0, first_seen)


def test_defaults_are_unchanged_and_options_validated():
    cfg = SynthConfig()
    assert cfg.transitions == () and cfg.close_ups == () and cfg.edge_entrance is False
    with pytest.raises(UserError, match="one entry per shot start"):
        SynthConfig(shot_starts=(50,), transitions=("fade", "cut"))
    with pytest.raises(UserError, match="valid: cut, fade, dissolve"):
        SynthConfig(shot_starts=(50,), transitions=("wipe",))
    with pytest.raises(UserError, match="overlap"):
        SynthConfig(shot_starts=(50, 55), transitions=("dissolve", "cut"))
    with pytest.raises(UserError, match="overlap"):
        SynthConfig(num_frames=100, shot_starts=(96,), transitions=("fade",))
    with pytest.raises(UserError, match="close_ups"):
        SynthConfig(shot_starts=(50,), close_ups=(2,))
