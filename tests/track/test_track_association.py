"""JDETracker on hand-built scenarios: crossing, occlusion, lost buffer, duplicates, reset, purity."""

from __future__ import annotations

import numpy as np
import pytest

from portrait_builder.detect.types import Detections
from portrait_builder.errors import UserError
from portrait_builder.track import JDETracker, TrackerConfig, TrackState

W, H = 40.0, 100.0


def person(xc: float, yc: float = 200.0, w: float = W, h: float = H) -> list[float]:
    return [xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2]


def emb(k: int, dim: int = 8, noise: float = 0.0, rng=None) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    v[k] = 1.0
    if noise and rng is not None:
        v = v + rng.normal(0, noise, dim).astype(np.float32)
    return v / np.linalg.norm(v)


def frame(boxes, embs, scores=None) -> Detections:
    n = len(boxes)
    if n == 0:
        return Detections.empty(8)
    return Detections(
        np.array(boxes, np.float32).reshape(n, 4),
        np.full(n, 0.9, np.float32) if scores is None else np.array(scores, np.float32),
        np.array(embs, np.float32).reshape(n, -1),
    )


def ids_by_embedding(out: Detections) -> dict[int, int]:
    return {int(np.argmax(e)): int(t) for e, t in zip(out.embeddings, out.track_ids, strict=True)}


def test_two_people_crossing_keep_their_ids():
    rng = np.random.default_rng(0)
    tracker = JDETracker()
    seen: dict[int, set[int]] = {0: set(), 1: set()}
    for f in range(60):
        # A walks right, B walks left; they overlap almost fully around frame 30.
        a, b = person(100 + 6 * f), person(460 - 6 * f, 204)
        order = [0, 1] if f % 2 else [1, 0]  # detection order must not matter
        boxes = [[a, b][k] for k in order]
        embs = [emb(k, noise=0.05, rng=rng) for k in order]
        out = tracker.update(frame(boxes, embs))
        for k, tid in ids_by_embedding(out).items():
            seen[k].add(tid)
        if f >= 1:
            assert len(out) == 2, f"frame {f}: {out.track_ids}"
    assert len(seen[0]) == 1 and len(seen[1]) == 1 and seen[0] != seen[1]


def test_short_occlusion_reactivates_old_id():
    tracker = JDETracker(frame_rate=30.0)  # buffer: 30 frames
    ids = []
    for f in range(60):
        hidden = 20 <= f < 40  # 20 frames < 30
        dets = frame([], []) if hidden else frame([person(100 + 3 * f)], [emb(2)])
        out = tracker.update(dets)
        if hidden:
            assert len(out) == 0
            assert tracker.track_ids(TrackState.LOST) == [1]
        elif f >= 1:
            ids.append(int(out.track_ids[0]))
    assert set(ids) == {1}
    assert tracker.next_id == 2


@pytest.mark.parametrize(
    "frame_rate, gap, same_id", [(30.0, 29, True), (30.0, 40, False), (10.0, 15, False), (60.0, 45, True)]
)
def test_lost_buffer_scales_with_frame_rate(frame_rate, gap, same_id):
    tracker = JDETracker(frame_rate=frame_rate)
    assert tracker.max_time_lost == int(frame_rate / 30.0 * 30)
    before = after = None
    for f in range(10 + gap + 5):
        hidden = 10 <= f < 10 + gap
        out = tracker.update(frame([], []) if hidden else frame([person(200)], [emb(1)]))
        if f == 9:
            before = int(out.track_ids[0])
        if f == 10 + gap + 4:
            after = int(out.track_ids[0])
    assert (before == after) is same_id
    if not same_id:
        assert after > before


def test_duplicate_of_lost_track_is_dropped_until_it_expires():
    # A stands still, vanishes; someone who looks different appears on the very same spot.
    tracker = JDETracker(frame_rate=10.0)  # buffer: 10 frames
    for _ in range(10):
        out = tracker.update(frame([person(200)], [emb(0)]))
    assert out.track_ids.tolist() == [1]
    tracker.update(frame([], []))
    outputs = [tracker.update(frame([person(200)], [emb(5)])) for _ in range(15)]
    # While A is lost (<= 10 frames) the young track on its box is a duplicate and is dropped
    # each frame, so it never confirms; afterwards it confirms with a new id.
    assert all(len(o) == 0 for o in outputs[:9])
    assert [o.track_ids.tolist() for o in outputs[-3:]] == [[2]] * 3
    assert 1 not in tracker.track_ids()


def test_reset_at_shot_cut_no_track_spans_it():
    tracker = JDETracker()
    shot1 = [tracker.update(frame([person(100), person(300)], [emb(0), emb(1)])) for _ in range(5)]
    ids1 = set(np.concatenate([o.track_ids for o in shot1]).tolist())
    tracker.reset()
    assert tracker.num_tracks == 0
    first = tracker.update(frame([person(100), person(300)], [emb(0), emb(1)]))
    assert len(first) == 0  # unconfirmed on the shot's first frame
    shot2 = [tracker.update(frame([person(100), person(300)], [emb(0), emb(1)])) for _ in range(5)]
    ids2 = set(np.concatenate([o.track_ids for o in shot2]).tolist())
    assert ids1 == {1, 2} and ids2 == {3, 4} and tracker.next_id == 5


def test_confirm_first_frame_and_first_id():
    tracker = JDETracker(TrackerConfig(confirm_first_frame=True), first_id=100)
    out = tracker.update(frame([person(100), person(300)], [emb(0), emb(1)]))
    assert out.track_ids.tolist() == [100, 101]
    assert tracker.next_id == 102


def test_input_not_mutated_and_indices_carry_through():
    rng = np.random.default_rng(3)
    tracker = JDETracker()
    first_ids = None
    for f in range(20):
        base = [(person(80 + 5 * f), emb(0)), (person(300, 150), emb(1)), (person(500 - 4 * f, 260), emb(2))]
        perm = rng.permutation(3)
        dets = frame([base[i][0] for i in perm], [base[i][1] for i in perm], scores=[0.7, 0.8, 0.9])
        copies = (dets.xyxy.copy(), dets.scores.copy(), dets.embeddings.copy())
        out = tracker.update(dets)
        np.testing.assert_array_equal(dets.xyxy, copies[0])
        np.testing.assert_array_equal(dets.scores, copies[1])
        np.testing.assert_array_equal(dets.embeddings, copies[2])
        assert dets.track_ids is None
        idx = tracker.last_detection_indices
        assert len(idx) == len(out)
        np.testing.assert_array_equal(out.xyxy, dets.xyxy[idx])  # the detection's box, not the Kalman box
        np.testing.assert_array_equal(out.embeddings, dets.embeddings[idx])
        assert not np.shares_memory(out.xyxy, dets.xyxy)
        if f >= 1:
            # every person (embedding k) keeps the id it got when its track was confirmed
            first_ids = first_ids or ids_by_embedding(out)
            assert ids_by_embedding(out) == first_ids
    assert sorted(first_ids.values()) == [1, 2, 3]


def test_output_filter_hides_but_keeps_track():
    tracker = JDETracker()
    for f in range(6):
        wide = f in (3, 4)
        box = person(200, w=200 if wide else W, h=100)  # w/h 2.0 > 1.6 on frames 3-4
        out = tracker.update(frame([box], [emb(0)]))
        if f >= 1:
            assert len(out) == (0 if wide else 1)
    assert out.track_ids.tolist() == [1]
    tiny = JDETracker()
    for _ in range(3):
        out = tiny.update(frame([person(50, w=8, h=20)], [emb(0)]))  # area 160 <= 200
    assert len(out) == 0 and tiny.track_ids() == [1]


def test_low_scores_do_not_start_tracks_and_min_score_ignores():
    tracker = JDETracker()
    for _ in range(5):
        out = tracker.update(frame([person(100)], [emb(0)], scores=[0.3]))
    assert len(out) == 0 and tracker.num_tracks == 0
    # An existing track may be extended by a weak detection unless min_score drops it.
    for strict, expected in ((False, 1), (True, 0)):
        t = JDETracker(TrackerConfig(min_score=0.5 if strict else 0.0))
        for _ in range(3):
            t.update(frame([person(100)], [emb(0)]))
        assert len(t.update(frame([person(100)], [emb(0)], scores=[0.3]))) == expected


def test_iou_only_without_embeddings():
    tracker = JDETracker()
    ids = set()
    for f in range(30):
        out = tracker.update(frame([person(100 + 4 * f), person(400, 300)], np.zeros((2, 0))))
        ids.update(out.track_ids.tolist())
    assert ids == {1, 2}


def test_state_is_bounded_and_instances_independent():
    rng = np.random.default_rng(7)
    a, b = JDETracker(), JDETracker()
    for _ in range(400):
        n = rng.integers(0, 6)
        boxes = [person(*rng.uniform([50, 60], [600, 400])) for _ in range(n)]
        a.update(frame(boxes, [emb(int(k)) for k in rng.integers(0, 8, n)]))
        assert a.num_tracks <= 6 * (a.max_time_lost + 2)
    assert b.next_id == 1 and b.num_tracks == 0  # no shared counters or lists
    assert a.next_id > 1


def test_config_validation_and_from_dict():
    with pytest.raises(UserError, match="iou_limit"):
        TrackerConfig(iou_limit=0)
    with pytest.raises(UserError, match="valid: .*buffer_frames"):
        TrackerConfig.from_dict({"bufer_frames": 3})
    cfg = TrackerConfig.from_dict({"buffer_frames": 60})
    assert cfg.buffer_frames == 60 and TrackerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(UserError, match="frame_rate"):
        JDETracker(frame_rate=0)
    with pytest.raises(TypeError):
        JDETracker().update(np.zeros((1, 4)))
