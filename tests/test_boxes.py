import numpy as np
import pytest

from portrait_builder import boxes
from portrait_builder.detect.types import Detections


def test_round_trips():
    xyxy = np.array([[10, 20, 50, 120], [0, 0, 1, 2]], np.float32)
    np.testing.assert_allclose(boxes.xywh_to_xyxy(boxes.xyxy_to_xywh(xyxy)), xyxy)
    np.testing.assert_allclose(boxes.cxcywh_to_xyxy(boxes.xyxy_to_cxcywh(xyxy)), xyxy)
    np.testing.assert_allclose(boxes.xyah_to_xyxy(boxes.xyxy_to_xyah(xyxy)), xyxy, atol=1e-4)
    np.testing.assert_allclose(boxes.xyxy_to_xywh(xyxy)[0], [10, 20, 40, 100])
    np.testing.assert_allclose(boxes.xyxy_to_xyah(xyxy)[0], [30, 70, 0.4, 100])


def test_iou_against_hand_computed():
    a = [[0, 0, 10, 10]]
    b = [[5, 5, 15, 15], [20, 20, 30, 30], [0, 0, 10, 10]]
    # overlap 5x5=25, union 100+100-25=175
    np.testing.assert_allclose(boxes.box_iou(a, b), [[25 / 175, 0.0, 1.0]], rtol=1e-6)
    assert boxes.box_iou(np.zeros((0, 4)), b).shape == (0, 3)


def test_detections_validation_and_indexing():
    det = Detections([[0, 0, 10, 20], [5, 5, 8, 9]], [0.9, 0.4], np.eye(2))
    assert len(det) == 2 and det.embeddings.dtype == np.float32
    kept = det[det.scores > 0.5]
    assert len(kept) == 1 and kept.scores[0] == pytest.approx(0.9)
    assert det.with_track_ids([3, 4])[1].track_ids.tolist() == [4]
    np.testing.assert_allclose(det.heights, [20, 4])
    with pytest.raises(ValueError, match="disagree"):
        Detections([[0, 0, 1, 1]], [0.5, 0.6], np.zeros((1, 0)))
    assert len(Detections.empty(8)) == 0 and Detections.empty(8).embeddings.shape == (0, 8)
