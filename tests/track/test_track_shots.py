"""Shot-cut detector on real frames: synthetic cuts made by concatenating different real scenes,
and no false cuts on the continuous PETS09-S2L1 clip (people walking through a static shot)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from portrait_builder.errors import UserError
from portrait_builder.track import ShotCutConfig, ShotCutDetector


def _mot17_frames(shared_data: Path) -> dict[str, list[np.ndarray]]:
    root = shared_data / "mot" / "MOT17-mini" / "train"
    seqs = sorted(p for p in root.iterdir() if (p / "img1").is_dir())
    return {p.name: [cv2.imread(str(f)) for f in sorted((p / "img1").glob("*.jpg"))] for p in seqs}


def _pets_frames(shared_data: Path, limit: int | None = None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(shared_data / "video" / "vtest_pets09_s2l1_480x360.avi"))
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_cuts_between_real_scenes_found_exactly(shared_data):
    seqs = _mot17_frames(shared_data)
    # Four frames of one Market-1501 camera taken within a few seconds: 009376 ... 009526.
    market = sorted((shared_data / "market1501_fullframes" / "frames").glob("c1s1_009*.jpg"))
    # Shots of different sizes, frame sizes and content; a Market-1501 camera shot in the middle.
    shots = list(seqs.values())
    shots.insert(3, [cv2.imread(str(p)) for p in market])
    assert all(len(s) >= 4 for s in shots)
    video = [f for shot in shots for f in shot]
    expected = np.cumsum([len(s) for s in shots])[:-1].tolist()
    det = ShotCutDetector()
    cuts = [i for i, f in enumerate(video) if det.is_cut(f)]
    assert cuts == expected


def test_no_false_cut_on_continuous_pets09(shared_data):
    frames = _pets_frames(shared_data)
    assert len(frames) >= 790
    det = ShotCutDetector()
    assert not any(det.is_cut(f) for f in frames)
    assert det.last_distance < ShotCutConfig().min_distance


def test_cut_inside_pets09_and_back(shared_data):
    pets = _pets_frames(shared_data, 120)
    other = _mot17_frames(shared_data)["MOT17-09-FRCNN"]
    video = pets[:60] + other + pets[60:]
    det = ShotCutDetector()
    cuts = [i for i, f in enumerate(video) if det.is_cut(f)]
    assert cuts == [60, 60 + len(other)]


def test_first_frame_is_not_a_cut_and_reset():
    det = ShotCutDetector()
    black = np.zeros((90, 160, 3), np.uint8)
    red = black.copy()
    red[..., 2] = 255
    assert det.is_cut(black) is False
    for _ in range(5):
        assert det.is_cut(black) is False
    assert det.is_cut(red) is True
    det.reset()
    assert det.is_cut(black) is False
    with pytest.raises(ValueError):
        det.is_cut(np.zeros((10, 10), np.uint8))
    with pytest.raises(UserError):
        ShotCutConfig(min_distance=0)
