"""Which tracks of one movie show the same character: constrained agglomerative clustering of tracks.

Evidence between two tracks: their faces (mean of the unit-normalised dlib descriptors of their crops)
anywhere in the film, and their appearance (mean colour embedding of their crops) only inside one shot
or between adjacent shots, since clothes change between scenes (DESIGN.md section 7). Two tracks seen
in the same frame are two people (cannot-link). Pure NumPy: the store adapter builds
:class:`TrackFeatures`, this module returns cluster labels.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LINKAGES = ("average", "single")


APPEARANCES = ("torso", "detector")


@dataclass(frozen=True)
class ClusterConfig:
    """Thresholds of the track clustering. Distances are scaled so that each threshold maps to 1.0 and
    clusters merge while their linkage distance is below 1.0.

    face_threshold: euclidean distance between two tracks' mean unit-normalised face descriptors below
        which they show one person. dlib's own rule of thumb is 0.6 on raw descriptors, whose norm is
        about 1.4 (1.33-1.46 on the development clip): 0.43 on unit vectors; 0.40 leaves a margin, since
        film faces are smaller and less frontal than LFW's (development clip: different people's track
        means 0.45 and 0.53 apart; one person's single faces up to 0.42). When both tracks have a face,
        the face alone decides: clothes are no evidence against a face (two people in one uniform).
    min_face_px: faces narrower than this in the 256x128 crop (pixels) are left out of a track's face:
        dlib's chip is 150 px and its own face detector stops at about 40 px (with one upsampling);
        smaller faces give unreliable descriptors (development clip: a 32 px face lay 0.41 from
        another person's mean).
    appearance: "torso" (hue-saturation histogram of the crop's torso band, see
        :mod:`portrait_builder.characters.appearance`) or "detector" (the detector's stored embedding,
        for a detector with a learned one; the torso descriptor where a crop has none).
    appearance_threshold: cosine distance between two tracks' mean appearance below which they may show
        one person, inside ``appearance_shot_window``. Torso colour, measured: one person 0.05-0.11
        within a shot of the development clip (different people there from 0.19); across shots of the
        synthetic films one person up to 0.24 (average linkage chains them through closer pairs),
        different people from 0.18 in the film with look-alike tops (seed 3), else from 0.40.
        0.20: BCubed F1 >= 0.90 on all of them; 0.25 merged seed 3's look-alikes (F1 0.86), 0.30 the
        development clip's woman with the man beside her (F1 0.85).
    appearance_shot_window: appearance links tracks at most this many shots apart, since clothes change
        between scenes (0: same shot only). 2, not 1: the commonest edit of a dialogue, shot / reverse
        shot (A, B, A), shows the same person two shots apart in the same clothes (synthetic films,
        people skipping a shot: BCubed F1 0.84 / 0.88 with 1, 0.94 / 0.94 with 2; development clip 1.0 both).
    appearance_crops: crops per track (evenly spaced) whose torso is read: the cost stays bounded on
        long tracks.
    linkage: "average" (mean distance over the pairs of tracks with evidence between them) or "single".
    """

    face_threshold: float = 0.40
    min_face_px: float = 40.0
    appearance: str = "torso"
    appearance_threshold: float = 0.20
    appearance_shot_window: int = 2
    appearance_crops: int = 8
    linkage: str = "average"

    def __post_init__(self):
        from portrait_builder.errors import UserError

        if self.linkage not in LINKAGES:
            raise UserError(f"characters: unknown linkage {self.linkage!r}; valid: {', '.join(LINKAGES)}")
        if self.appearance not in APPEARANCES:
            raise UserError(f"characters: unknown appearance {self.appearance!r}; valid: {', '.join(APPEARANCES)}")
        if min(self.face_threshold, self.appearance_threshold) <= 0 or self.appearance_shot_window < 0 \
                or self.appearance_crops < 1 or self.min_face_px < 0:
            raise UserError("characters: thresholds must be > 0, appearance_crops >= 1, appearance_shot_window "
                            "and min_face_px >= 0")


@dataclass(frozen=True)
class TrackFeatures:
    """What the clustering knows of one movie's N tracks.

    track_ids: (N,) store ids. shots: (N,) shot index of each track.
    faces: (N, F) float32 unit-norm mean face descriptor, a NaN row for a track without a face.
    appearance: (N, D) float32 unit-norm mean colour embedding, a NaN row for a track without one.
    frames: per track, the frame indices where it has a box (crops): tracks sharing one are two people.
    """

    track_ids: np.ndarray
    shots: np.ndarray
    faces: np.ndarray
    appearance: np.ndarray
    frames: Sequence[np.ndarray]

    def __len__(self) -> int:
        return len(self.track_ids)


def unit_mean(vectors: np.ndarray) -> np.ndarray:
    """Mean of the unit-normalised rows of ``vectors`` (K, D), normalised again; NaN (D,) when K == 0."""
    v = np.asarray(vectors, np.float32)
    if len(v) == 0:
        return np.full(v.shape[1] if v.ndim == 2 else 0, np.nan, np.float32)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    m = v.mean(axis=0)
    return (m / max(float(np.linalg.norm(m)), 1e-12)).astype(np.float32)


def cannot_link(frames: Sequence[np.ndarray]) -> np.ndarray:
    """(N, N) bool: True where two tracks have a box in the same frame."""
    n = len(frames)
    out = np.zeros((n, n), bool)
    by_frame: dict[int, list[int]] = defaultdict(list)
    for i, fr in enumerate(frames):
        for f in np.unique(np.asarray(fr, np.int64)):
            by_frame[int(f)].append(i)
    for members in by_frame.values():
        if len(members) > 1:
            idx = np.asarray(members)
            out[np.ix_(idx, idx)] = True
    np.fill_diagonal(out, False)
    return out


def pair_distances(feats: TrackFeatures, config: ClusterConfig) -> np.ndarray:
    """(N, N) float32 scaled distances (1.0 = the merge threshold); inf where there is no evidence."""
    n = len(feats)
    d = np.full((n, n), np.inf, np.float32)  # float32: the N^2 matrices are the memory of a long film
    if n == 0:
        return d
    has_app = ~np.isnan(feats.appearance).any(axis=1) if feats.appearance.size else np.zeros(n, bool)
    if has_app.any():
        a = np.nan_to_num(feats.appearance).astype(np.float32)
        d_app = (1.0 - a @ a.T) / np.float32(config.appearance_threshold)
        shots = np.asarray(feats.shots)
        near = np.abs(shots[:, None] - shots[None, :]) <= config.appearance_shot_window
        ok = near & has_app[:, None] & has_app[None, :]
        del near
        d[ok] = d_app[ok]
        del d_app, ok
    has_face = ~np.isnan(feats.faces).any(axis=1) if feats.faces.size else np.zeros(n, bool)
    if has_face.any():
        f = np.nan_to_num(feats.faces).astype(np.float32)
        d_face = np.sqrt(np.maximum(2.0 - 2.0 * (f @ f.T), 0.0))  # unit vectors: |a - b|^2 = 2 - 2 a.b
        both = has_face[:, None] & has_face[None, :]
        d[both] = d_face[both] / config.face_threshold  # both show a face: the face alone decides
    np.fill_diagonal(d, np.inf)
    return d


def agglomerate(dist: np.ndarray, forbidden: np.ndarray, linkage: str = "average", stop: float = 1.0) -> np.ndarray:
    """Agglomerative clustering under cannot-link constraints.

    dist: (N, N) symmetric distances, inf where two items have no evidence between them.
    forbidden: (N, N) bool, True where two items may never share a cluster (inherited by clusters).
    Merges the closest pair of clusters while its linkage distance is below ``stop``; "average" is the
    mean over the item pairs that have evidence (pairs without evidence neither help nor hurt),
    "single" the smallest. Returns (N,) int64 labels 0..K-1 in order of each cluster's first item.
    """
    n = len(dist)
    if linkage not in LINKAGES:
        raise ValueError(f"unknown linkage {linkage!r}; valid: {', '.join(LINKAGES)}")
    finite = np.isfinite(dist)
    # sum (average) or min (single) of the distances over the item pairs with evidence
    total = np.where(finite, dist, 0.0 if linkage == "average" else np.inf).astype(np.float64)
    count = finite.astype(np.int32)
    del finite
    banned = np.asarray(forbidden, bool).copy()
    np.fill_diagonal(banned, True)
    active = np.ones(n, bool)
    parent = np.arange(n)

    def row(i: int) -> np.ndarray:
        if linkage == "average":
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.where(count[i] > 0, total[i] / np.maximum(count[i], 1), np.inf)
        else:
            r = total[i].copy()
        r[banned[i] | ~active] = np.inf
        return r

    best = np.full(n, np.inf)
    arg = np.zeros(n, np.int64)
    for i in range(n):
        r = row(i)
        arg[i] = int(np.argmin(r)) if n else 0
        best[i] = r[arg[i]] if n else np.inf
    while True:
        cand = np.where(active, best, np.inf)
        i = int(np.argmin(cand)) if n else 0
        if n == 0 or not cand[i] < stop:
            break
        a, b = sorted((i, int(arg[i])))
        # merge b into a
        if linkage == "average":
            total[a] += total[b]
            total[:, a] = total[a]
            count[a] += count[b]
            count[:, a] = count[a]
        else:
            total[a] = np.minimum(total[a], total[b])
            total[:, a] = total[a]
        banned[a] |= banned[b]
        banned[:, a] = banned[a]
        banned[a, a] = True
        active[b] = False
        best[b] = np.inf
        parent[parent == b] = a
        col = row(a)  # linkage of the merged cluster to every other one (the matrices are symmetric)
        arg[a] = int(np.argmin(col))
        best[a] = col[arg[a]]
        stale = active & ((arg == a) | (arg == b))  # their nearest cluster changed: recompute their row
        stale[a] = False
        for k in np.flatnonzero(stale):
            r = row(int(k))
            arg[k] = int(np.argmin(r))
            best[k] = r[arg[k]]
        closer = active & (col < best)
        closer[a] = False
        best[closer], arg[closer] = col[closer], a
    _, labels = np.unique(parent, return_inverse=True)
    order = {}
    for lab in labels:
        order.setdefault(int(lab), len(order))
    return np.array([order[int(lab)] for lab in labels], np.int64)


def cluster_tracks(feats: TrackFeatures, config: ClusterConfig | None = None) -> np.ndarray:
    """(N,) int64 candidate labels of the tracks in ``feats`` (see the module docstring)."""
    config = config or ClusterConfig()
    return agglomerate(pair_distances(feats, config), cannot_link(feats.frames), config.linkage)
