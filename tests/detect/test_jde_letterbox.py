"""JDE's letterbox against numbers worked out by hand from JDE.md, and its inverse for boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from portrait_builder.detect.jde.letterbox import (
    LetterboxInfo,
    letterbox,
    letterbox_boxes,
    letterbox_geometry,
    letterbox_uint8,
    unletterbox_boxes,
)


@pytest.mark.parametrize(
    "src,dst,new,pads",
    [
        # 1920x1080 -> 1088x608: ratio min(608/1080, 1088/1920) = 0.56296; width round(1080.89) = 1081;
        # dw = 3.5 -> left round(3.4) = 3, right round(3.6) = 4
        ((1920, 1080), (1088, 608), (1081, 608), (0, 0, 3, 4)),
        # 640x480 -> 576x320: ratio 2/3; width round(426.67) = 427; dw = 74.5 -> 74 left, 75 right
        ((640, 480), (576, 320), (427, 320), (0, 0, 74, 75)),
        # 768x576 (PETS09) -> 864x480: ratio 0.8333; width 640; dw = 112 -> 112, 112
        ((768, 576), (864, 480), (640, 480), (0, 0, 112, 112)),
        # 500x200 -> 576x320: ratio 1.152; 576x230; dh = 45 -> 45, 45
        ((500, 200), (576, 320), (576, 230), (45, 45, 0, 0)),
        # 501x200 -> 576x320: ratio 1.1497; height round(229.94) = 230 ... dh = 45
        ((501, 200), (576, 320), (576, 230), (45, 45, 0, 0)),
        # 577x201 -> 576x320: ratio 0.99827; 576 x round(200.65) = 201; dh = 59.5 -> round(59.4) = 59 top, round(59.6) = 60 bottom
        ((577, 201), (576, 320), (576, 201), (59, 60, 0, 0)),
    ],
)
def test_geometry_by_hand(src, dst, new, pads):
    got_new, got_pads = letterbox_geometry(*src, *dst)
    assert got_new == new
    assert got_pads == pads
    assert new[0] + pads[2] + pads[3] == dst[0] and new[1] + pads[0] + pads[1] == dst[1]


def test_pixels_pad_value_colour_order_and_scale():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, :, 0] = 255  # pure blue in BGR
    chw, info = letterbox(frame, 576, 320)
    assert chw.shape == (3, 320, 576) and chw.dtype == np.float32
    # RGB order: blue ends in channel 2; values divided by 255, no mean/std
    inside = chw[:, :, 74:74 + 427]
    assert np.allclose(inside[2], 1.0) and np.allclose(inside[:2], 0.0)
    # padding: 127.5 in uint8 is 128 -> 128/255 in every channel
    assert np.allclose(chw[:, :, :74], 128 / 255) and np.allclose(chw[:, :, 74 + 427:], 128 / 255)
    assert info == LetterboxInfo(640, 480, 576, 320)


def test_resize_is_inter_area():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    img, _ = letterbox_uint8(frame, 576, 320)
    ref = cv2.resize(frame, (427, 320), interpolation=cv2.INTER_AREA)
    assert np.array_equal(img[:, 74:74 + 427], ref)
    assert not np.array_equal(ref, cv2.resize(frame, (427, 320), interpolation=cv2.INTER_LINEAR))


def test_inverse_boxes_by_hand_and_round_trip():
    info = LetterboxInfo(640, 480, 576, 320)  # gain 2/3, pad_x (576 - 426.67) / 2 = 74.667, pad_y 0
    assert info.gain == pytest.approx(2 / 3)
    assert info.pad == pytest.approx((74.6667, 0.0), abs=1e-3)
    net = np.array([[74.6667 + 20, 10, 74.6667 + 60, 110]], np.float32)
    assert unletterbox_boxes(net, info)[0] == pytest.approx([30, 15, 90, 165], abs=1e-3)
    src = np.array([[0, 0, 640, 480], [100.5, 50.25, 300, 400]], np.float32)
    assert np.allclose(unletterbox_boxes(letterbox_boxes(src, info), info), src, atol=1e-3)
    # boxes reaching into the padding are clamped to the frame
    out = unletterbox_boxes(np.array([[0, -5, 700, 400]], np.float32), info)
    assert out[0].tolist() == pytest.approx([0, 0, 640, 480])
