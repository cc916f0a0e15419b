"""Candidates in the store, on SQLite and PostgreSQL: clustering a hand-built movie, confirmed
candidates surviving a recompute, the identity view's API, and ``portrait characters``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from characters_movie import FakeTrack, add_movie, unit
from sqlalchemy import select

from portrait_builder.characters import (
    ClusterConfig,
    candidate_of_track,
    candidate_tracks,
    face_similarity,
    list_candidates,
    track_face_embedding,
    update_characters,
)
from portrait_builder.cli import main
from portrait_builder.store import Annotator, Candidate, Identity, Track

RNG = np.random.default_rng(7)
FACE_A, FACE_B = (1.4 * unit(RNG.normal(size=128)) for _ in range(2))
RED, BLUE, GREEN = (30, 30, 200), (200, 60, 30), (40, 170, 40)  # BGR


def film() -> list[FakeTrack]:
    """A (tracks 1, 3, 5) and B (2, 4) in shots 0 and 1, C (6) in shot 4 with A, who changed from red
    to green, while C wears red: faces link A's shots; clothes only link nearby shots."""
    return [
        FakeTrack(1, 0, [0, 5], RED, FACE_A),
        FakeTrack(2, 0, [0, 5], BLUE),  # with 1 in frames 0 and 5: another person
        FakeTrack(3, 1, [10, 15], RED),  # A from behind in the next shot
        FakeTrack(4, 1, [10, 15], BLUE, FACE_B),
        FakeTrack(5, 4, [40, 45], GREEN, FACE_A + RNG.normal(scale=0.02, size=128)),
        FakeTrack(6, 4, [40, 45], RED),
    ]


def groups(project, video_id) -> set[frozenset[int]]:
    return {frozenset(c.track_ids) for c in list_candidates(project, [video_id])}


def test_tracks_cluster_into_characters_and_confirmed_candidates_survive(project):
    vid, ids = add_movie(project, film())
    report = update_characters(project, progress=False)
    assert report.face_embeddings == 0 and report.clustered == {vid: 3}
    expect = {frozenset({ids[1], ids[3], ids[5]}), frozenset({ids[2], ids[4]}), frozenset({ids[6]})}
    assert groups(project, vid) == expect
    rows = {frozenset(c.track_ids): c for c in list_candidates(project, [vid])}
    a = rows[frozenset({ids[1], ids[3], ids[5]})]
    assert (a.tracks, a.crops, a.face_crops, a.confirmed) == (3, 6, 4, False)
    assert candidate_of_track(project, ids[3]) == a.id and candidate_tracks(project, a.id) == sorted(a.track_ids)

    # A person confirms B's candidate as a character.
    b = rows[frozenset({ids[2], ids[4]})]

    def confirm(s):
        person = Annotator(name="ann", role="annotator", attribute="identity")
        s.add(person)
        ident = Identity(video_id=vid, name="Bea")
        s.add(ident)
        s.flush()
        cand = s.get(Candidate, b.id)
        cand.identity_id, cand.confirmed_by, cand.confirmed_at = ident.id, person.id, 1.0

    project.run_write(confirm)
    # A recompute that finds the same clusters keeps their ids (the app may be showing them).
    update_characters(project, progress=False, recluster=True)
    assert {c.id: frozenset(c.track_ids) for c in list_candidates(project, [vid])} == {
        c.id: frozenset(c.track_ids) for c in rows.values()}
    # Nothing changed: nothing is recomputed. A recompute that would join everyone (huge thresholds,
    # no cannot-link across B's tracks) still leaves B's candidate as the person confirmed it.
    assert update_characters(project, progress=False).clustered == {}
    update_characters(project, progress=False, recluster=True,
                      config=ClusterConfig(appearance_threshold=5.0, appearance_shot_window=99, face_threshold=9.0))
    after = {frozenset(c.track_ids): c for c in list_candidates(project, [vid])}
    kept = after[frozenset({ids[2], ids[4]})]
    assert (kept.id, kept.confirmed, kept.identity_name, kept.confirmed_by) == (b.id, True, "Bea", "ann")
    # The others joined as far as cannot-link allows (5 and 6 share frames): two candidates.
    assert len(after) == 3 and not any({ids[5], ids[6]} <= group for group in after)
    with project.session() as s:
        assert s.scalar(select(Track.candidate_id).where(Track.id == ids[4])) == b.id
        assert len(s.scalars(select(Candidate.id).where(Candidate.video_id == vid)).all()) == len(after)


def test_face_api_for_the_identity_view(project):
    vid, ids = add_movie(project, film())
    fa = track_face_embedding(project, ids[1])
    assert fa is not None and np.linalg.norm(fa) == pytest.approx(1.0, abs=1e-5)
    assert track_face_embedding(project, ids[2]) is None
    same = face_similarity(fa, track_face_embedding(project, ids[5]))
    other = face_similarity(fa, track_face_embedding(project, ids[4]))
    assert same > 0.95 and other < 0.5
    assert face_similarity(np.asarray(FACE_A, "<f2").tobytes(), FACE_A) == pytest.approx(1.0, abs=1e-3)
    assert face_similarity(None, fa) is None and candidate_of_track(project, ids[1]) is None


def test_cli_lists_candidates_as_table_and_json(project, capsys):
    vid, ids = add_movie(project, film(), title="Tears")
    root = str(project.root)
    assert main(["characters", root, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"movie {vid} 'Tears': 3 candidate character(s)" in out
    assert f"{ids[1]} {ids[3]} {ids[5]}" in out
    assert main(["characters", root, "--json", "--video", "Tears"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(len(r["track_ids"]) for r in rows) == [1, 2, 3]
    assert {r["confirmed"] for r in rows} == {False} and sum(r["crops"] for r in rows) == 12
    assert main(["characters", root, "--video", "Nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("portrait: error: no movie 'Nope'")
    assert main(["characters", root, "--workers", "0"]) == 2
