"""Detector registry and the HOG backend: names, errors, protocol, boxes and embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from portrait_builder.boxes import box_iou
from portrait_builder.detect import Detector, create_detector, detector_names
from portrait_builder.detect.hog import HEIGHT_FACTOR, WIDTH_FACTOR, calibrate_hog_boxes
from portrait_builder.errors import UserError
from portrait_builder.synth import SynthConfig, render_frames


def test_unknown_detector_lists_valid_names():
    with pytest.raises(UserError) as e:
        create_detector("yolo")
    for name in ("hog", "onnx", "jde"):
        assert name in str(e.value)
    assert set(detector_names()) >= {"hog", "onnx", "jde"}


def test_unknown_option_and_device_are_user_errors():
    with pytest.raises(UserError, match="valid options"):
        create_detector("hog", upscalee=2)
    with pytest.raises(UserError, match="valid devices"):
        create_detector("hog", device="tpu")
    with pytest.raises(UserError, match="no weights"):
        create_detector("hog", weights="x.pt")
    with pytest.raises(UserError, match="padding >= 0"):
        create_detector("hog", padding=-1)


def test_jde_is_either_available_or_a_clear_error():
    try:
        det = create_detector("jde")
    except UserError as exc:  # missing module or missing --weights: one clear line, no traceback
        assert "\n" not in str(exc) and "jde" in str(exc).lower()
    else:
        assert isinstance(det, Detector)


def test_hog_calibration_shrinks_to_the_person():
    raw = np.array([[100, 50, 164, 178]], np.float32)  # a 64x128 HOG window
    out = calibrate_hog_boxes(raw)[0]
    assert out[2] - out[0] == pytest.approx(64 * WIDTH_FACTOR, rel=1e-5)
    assert out[3] - out[1] == pytest.approx(128 * HEIGHT_FACTOR, rel=1e-5)
    assert (out[0] + out[2]) / 2 == pytest.approx(132)


def test_hog_detects_synthetic_people_with_normalised_embeddings():
    det = create_detector("hog")
    assert isinstance(det, Detector) and det.name == "hog" and len(det.fingerprint) == 64
    frames = [f for t, f, _ in render_frames(SynthConfig(num_frames=30, shot_starts=(), seed=2)) if t % 5 == 0]
    results = det.detect(frames)
    assert len(results) == len(frames)
    n = sum(len(r) for r in results)
    assert n >= 3
    for frame, r in zip(frames, results, strict=True):
        assert r.embeddings.shape == (len(r), det.embedding_dim)
        if len(r):
            np.testing.assert_allclose(np.linalg.norm(r.embeddings, axis=1), 1.0, atol=1e-5)
            assert (r.scores >= 0.5).all() and (r.scores <= 1).all()
            assert (r.xyxy[:, 0] >= 0).all() and (r.xyxy[:, 2] <= frame.shape[1]).all()


def test_hog_padding_finds_people_cut_by_the_frame_edge():
    """Border padding lets HOG windows reach past the image edge: a figure half a window from the left
    edge (which an unpadded 64x128 window cannot cover) is found with the default padding and not without."""
    from portrait_builder.synth.render import _background, _draw_person, make_people

    frame = _background(np.random.default_rng(0), 480, 320)
    person = make_people(SynthConfig(num_people=1, seed=0))[0]
    mask = np.zeros(frame.shape[:2], np.uint8)
    _draw_person(frame, mask, person, 34.0, 290.0, 140.0, 1.0, 1)
    ys, xs = np.nonzero(mask)
    gt = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    padded, unpadded = create_detector("hog").detect([frame])[0], create_detector("hog", padding=0).detect([frame])[0]
    assert len(padded) and box_iou(gt, padded.xyxy).max() >= 0.5
    assert not len(unpadded) or box_iou(gt, unpadded.xyxy).max() < 0.5
