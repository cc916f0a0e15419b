"""The synthetic film's ground truth is consistent with itself and with what the store holds.

References: the taxonomy's own validation (``Taxonomy.encode``) for every value; the store rows for
face visibility and embeddings; BCubed (portrait_builder.characters.bcubed, itself checked against
hand-computed values in tests/characters) for the real track clustering run on the film.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from sqlalchemy import select

from portrait_builder.store import Crop, Track


def test_every_crop_has_every_attribute_with_a_valid_value(make_world, tiny_spec, effort, world_mod):
    world = make_world(tiny_spec)
    tax = world.project.taxonomy
    assert len(world.truth) >= 30
    for crop_id, truth in world.truth.items():
        assert set(truth) == set(effort.ATTRIBUTES)
        track = world.tracks[world.crop_track[crop_id]]
        if track.character is None:
            assert truth["identity"] == world_mod.UNKNOWN
        else:
            assert truth["identity"] == f"char:{track.character}"
        for attr, value in truth.items():
            if attr != "identity":
                tax.encode(attr, value)  # raises on a value outside the taxonomy
    # static attributes belong to the character: the same on every crop of it, in every shot
    per_char = defaultdict(set)
    for truth in world.truth.values():
        if truth["identity"] != world_mod.UNKNOWN:
            per_char[truth["identity"]].add(tuple(truth[a] for a in world_mod.STATIC))
    assert per_char and all(len(v) == 1 for v in per_char.values())


def test_change_points_lie_inside_tracks_and_are_where_values_change(make_world, tiny_spec, world_mod):
    world = make_world(tiny_spec)
    n_points = 0
    for track in world.tracks.values():
        n = len(track.crop_ids)
        for attr in world_mod.DYNAMIC:
            points = track.change_points[attr]
            assert all(1 <= p <= n - 1 for p in points) and list(points) == sorted(set(points))
            n_points += len(points)
            if attr == "expression":
                continue  # overridden by "unsure" where the face is hidden: checked below
            values = [world.truth[c][attr] for c in track.crop_ids]
            changes = [i for i in range(1, n) if values[i] != values[i - 1]]
            assert changes == list(points), (track.track_id, attr)
        expr = [world.truth[c]["expression"] for c in track.crop_ids]
        visible = [world.face_visible[c] for c in track.crop_ids]
        for i in range(1, n):
            if expr[i] != expr[i - 1]:
                assert i in track.change_points["expression"] or visible[i] != visible[i - 1]
    assert n_points > 0, "the film has no change point at all"


def test_faces_absent_where_flagged(make_world, tiny_spec, world_mod):
    world = make_world(tiny_spec)
    with world.project.session() as s:
        rows = s.execute(select(Crop.id, Crop.face_visible, Crop.face_embedding, Crop.face_x1, Crop.shot_index,
                                Crop.track_id)).all()  # fmt: skip
    assert {r.id for r in rows} == set(world.truth)
    hidden = 0
    for r in rows:
        assert r.face_visible == world.face_visible[r.id]
        assert (r.face_embedding is not None) == r.face_visible == (r.face_x1 is not None)
        assert (world.truth[r.id]["expression"] == [world_mod.UNSURE]) == (not r.face_visible)
        assert r.shot_index == world.tracks[r.track_id].shot
        hidden += not r.face_visible
        if r.face_visible:
            vec = np.frombuffer(r.face_embedding, "<f2").astype(np.float32)
            assert vec.shape == (world_mod.FACE_DIM,) and abs(float(np.linalg.norm(vec)) - 1.0) < 1e-2
    assert 0 < hidden < len(rows)


def test_same_build_twice_gives_the_same_film(make_world, tiny_spec):
    a, b = make_world(tiny_spec, "a"), make_world(tiny_spec, "b")
    assert a.truth == b.truth and a.crop_track == b.crop_track
    with a.project.session() as s:
        paths_a = s.execute(select(Crop.id, Crop.path, Crop.embedding)).all()
    with b.project.session() as s:
        paths_b = s.execute(select(Crop.id, Crop.path, Crop.embedding)).all()
    assert paths_a == paths_b


@pytest.mark.slow  # a 400-crop film and the real clustering
def test_film_structure_and_the_real_clustering(make_world, world_mod):
    """What films have: characters across shots in other clothes, broken tracks, background people, faces
    turned away; the real track clustering (portrait_builder.characters) finds the characters from it."""
    from portrait_builder.characters import bcubed, cluster_video, list_candidates

    spec = world_mod.EffortSpec(characters=4, shots=8, shot_crops=(16, 18), broken_track_rate=0.4, seed=1)
    world = make_world(spec)
    shots_of = defaultdict(set)
    tracks_in_shot = defaultdict(int)
    for t in world.tracks.values():
        shots_of[t.person].add(t.shot)
        tracks_in_shot[t.person, t.shot] += 1
    chars = [p for p in shots_of if p.startswith("char:")]
    assert max(len(shots_of[p]) for p in chars) >= 4
    assert any(p.startswith("bg:") for p in shots_of)
    assert any(n >= 2 for n in tracks_in_shot.values()), "no character broken into two tracks in a shot"
    # outfits: some character's crop colour histograms differ across scenes far more than within a track
    with world.project.session() as s:
        emb = {r.id: np.frombuffer(r.embedding, "<f2").astype(np.float32)
               for r in s.execute(select(Crop.id, Crop.embedding))}  # fmt: skip
        track_shot = dict(s.execute(select(Track.id, Track.shot_index)).all())
    lead = max(chars, key=lambda p: len(shots_of[p]))
    firsts = [t.crop_ids[0] for t in world.tracks.values() if t.person == lead]
    sims = [float(emb[a] @ emb[b]) for i, a in enumerate(firsts) for b in firsts[i + 1:]]
    assert min(sims) < 0.8 and track_shot

    cluster_video(world.project, world.video_id)
    cluster_of = {t: c.id for c in list_candidates(world.project) for t in c.track_ids}
    tids = sorted(world.tracks)
    p, r, f1 = bcubed([cluster_of[t] for t in tids], [world.tracks[t].person for t in tids])
    # the clustering's own target is F1 >= 0.90 (measured in benchmarks/characters.py); this film must be
    # one it can read: faces link a character's shots, clothes link its broken tracks
    assert p >= 0.9 and f1 >= 0.85, (p, r)
