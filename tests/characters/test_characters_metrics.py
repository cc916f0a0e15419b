"""BCubed (Amigo et al. 2009) on a hand-computed example, and the clustering against scipy's own
agglomerative clustering and under cannot-link constraints."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform

from portrait_builder.characters import ClusterConfig, TrackFeatures, bcubed, cluster_tracks
from portrait_builder.characters.cluster import agglomerate, cannot_link


def test_bcubed_matches_the_hand_computed_example():
    # Items e1..e7, classes (reference) L and clusters C. Per item, by Amigo et al.'s definition:
    # precision(e) = share of e's cluster with e's class: e1, e2 1 (x = {e1, e2}, both class 1); e3 1/3,
    # e4 2/3, e5 2/3 (y = {e3 (1), e4 (2), e5 (2)}); e6, e7 1 (singletons) -> (4 + 5/3) / 7 = 17/21.
    # recall(e) = share of e's class in e's cluster: e1, e2 2/3 (class 1 = {e1, e2, e3}, two in x); e3 1/3;
    # e4, e5 1 (class 2 = {e4, e5}, both in y); e6, e7 1/2 (class 3 split in z, w) -> (14/3) / 7 = 2/3.
    classes = [1, 1, 1, 2, 2, 3, 3]
    clusters = ["x", "x", "y", "y", "y", "z", "w"]
    p, r, f = bcubed(clusters, classes)
    assert p == pytest.approx(17 / 21) and r == pytest.approx(2 / 3)
    assert f == pytest.approx(2 * (17 / 21) * (2 / 3) / (17 / 21 + 2 / 3))
    # One cluster per item: precision 1, recall = mean over items of 1 / |class|.
    p, r, _ = bcubed(list(range(7)), classes)
    assert p == 1.0 and r == pytest.approx((3 * (1 / 3) + 2 * 0.5 + 2 * 0.5) / 7)
    # Everything in one cluster: recall 1, precision = sum of |class|^2 / N^2.
    p, r, _ = bcubed([0] * 7, classes)
    assert r == 1.0 and p == pytest.approx((9 + 4 + 4) / 49)
    with pytest.raises(ValueError):
        bcubed([1, 2], [1])


@pytest.mark.parametrize("method", ["average", "single"])
def test_agglomerate_without_constraints_is_scipys_clustering(method):
    # Reference: scipy.cluster.hierarchy.linkage + fcluster(criterion="distance") cut at the same threshold.
    rng = np.random.default_rng(0)
    for _ in range(10):
        x = rng.normal(size=(40, 3))
        ref = fcluster(linkage(pdist(x), method), t=1.0, criterion="distance")
        ours = agglomerate(squareform(pdist(x)), np.zeros((40, 40), bool), method, stop=1.0)
        assert bcubed(ours, ref) == (1.0, 1.0, 1.0)
        assert 1 < len(set(ref)) < 40  # the cut is not trivial


def _features(shots, frames, appearance, faces=None) -> TrackFeatures:
    n = len(shots)
    app = np.array([np.asarray(a, np.float32) / np.linalg.norm(a) for a in appearance])
    face = np.full((n, 4), np.nan, np.float32)
    for i, f in enumerate(faces or [None] * n):
        if f is not None:
            face[i] = np.asarray(f, np.float32) / np.linalg.norm(f)
    return TrackFeatures(np.arange(1, n + 1), np.array(shots), face, app, [np.array(f) for f in frames])


def test_tracks_seen_in_one_frame_are_never_one_character():
    # Three tracks dressed alike: 0 and 1 share frame 10 (two people), 2 is in the next shot.
    feats = _features([0, 0, 1], [[0, 10], [10, 20], [40]], [[1, 0, 0], [1, 0.01, 0], [1, 0.02, 0]])
    assert cannot_link(feats.frames)[0, 1] and not cannot_link(feats.frames)[0, 2]
    labels = cluster_tracks(feats)
    assert labels[0] != labels[1]
    assert labels[2] in (labels[0], labels[1])  # joins one of them, never both
    # Without the shared frame, all three are one person.
    feats = _features([0, 0, 1], [[0], [20], [40]], [[1, 0, 0], [1, 0.01, 0], [1, 0.02, 0]])
    assert len(set(cluster_tracks(feats).tolist())) == 1


def test_faces_link_across_the_film_clothes_only_nearby():
    a, b = [1, 0, 0, 0], [0, 1, 0, 0]
    # 0: shot 0, face a; 1: shot 5, other clothes, face a; 2: shot 5, no face, clothes of 0;
    # 3: shot 1, no face, clothes of 0 (adjacent shot).
    feats = _features([0, 5, 5, 1], [[0], [100], [101], [30]],
                      [[1, 0, 0], [0, 0, 1], [1, 0, 0], [1, 0, 0]], [a, a, None, None])
    labels = cluster_tracks(feats)
    assert labels[0] == labels[1] == labels[3] and labels[2] != labels[0]
    # When both tracks show a face, the face decides: two people in one shot in the same clothes...
    feats = _features([0, 0], [[0], [10]], [[1, 0, 0], [1, 0, 0]], [a, b])
    assert len(set(cluster_tracks(feats).tolist())) == 2
    # ... and colour alone across the film (window widened) would link 0 and 2.
    feats = _features([0, 5, 5, 1], [[0], [100], [101], [30]],
                      [[1, 0, 0], [0, 0, 1], [1, 0, 0], [1, 0, 0]], [None, None, None, None])
    wide = cluster_tracks(feats, ClusterConfig(appearance_shot_window=100))
    assert wide[0] == wide[2]


def test_bad_config_is_one_line():
    from portrait_builder.errors import UserError

    with pytest.raises(UserError, match="valid: average, single"):
        ClusterConfig(linkage="ward")
