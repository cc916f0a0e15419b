"""The identity view's proposal and whole-cluster confirm, and static attributes once per character,
through the real service on SQLite and PostgreSQL (real MOT17 person crops; candidate clusters and face
descriptors are written into the store the way ``portrait characters`` and the ingest leave them)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics.pairwise import euclidean_distances
from sqlalchemy import select

from portrait_builder.annotation import AnnotationPermissionError, AnnotationService
from portrait_builder.annotation.faces import FACE_MATCH_DISTANCE
from portrait_builder.errors import UserError
from portrait_builder.store.models import Candidate, Crop, CurrentLabel, Identity, Label
from portrait_builder.testing.annotation_sample import crops_by_track, make_candidate

FIRST_MOVIE = 1  # the sample's first movie: every test's store is a new one


# -- helpers -------------------------------------------------------------------------------------
def set_faces(project, track_id, person: np.ndarray, rng, noise=0.02) -> None:
    """Face descriptors on every crop of a track: one person's vector plus per-crop noise (float16 bytes;
    noise 0.02 a dimension puts two crops of one person ~0.3 apart, as dlib's descriptors are)."""

    def tx(s):
        for crop in s.scalars(select(Crop).where(Crop.track_id == track_id)):
            vec = person + rng.normal(0.0, noise, person.shape)
            crop.face_embedding = vec.astype("<f2").tobytes()
            crop.face_visible = True

    project.run_write(tx)


def person(rng) -> np.ndarray:
    """A descriptor like dlib's: two people are ~1.4 apart (random unit vectors), far above 0.6."""
    v = rng.normal(size=128)
    return v / np.linalg.norm(v)


def labels(project, crop_id) -> dict[str, tuple[str, str]]:
    """{attribute: (current value, provenance)}."""
    with project.session() as s:
        rows = s.execute(select(CurrentLabel.attribute, CurrentLabel.value, Label.provenance)
                         .join(Label, Label.id == CurrentLabel.label_id)
                         .where(CurrentLabel.crop_id == crop_id, CurrentLabel.value.is_not(None))).all()  # fmt: skip
    return {a: (v, p) for a, v, p in rows}


def candidate(project, cand_id) -> tuple:
    with project.session() as s:
        c = s.get(Candidate, cand_id)
        return c.identity_id, c.confirmed_by, c.confirmed_at


# -- item 2: the identity view proposes -----------------------------------------------------------
def test_new_character_from_cluster_confirm_all_undo_redo(annotated):
    project, _ = annotated
    tracks = crops_by_track(project, FIRST_MOVIE)
    t = sorted(tracks)
    assert len(t) >= 4
    cand = make_candidate(project, t[:3])
    svc = AnnotationService(project, "ann_id")
    crop = tracks[t[0]][0]

    prop = svc.proposal(crop)
    # no character yet: "new character" from the cluster, with its two other tracks (counts from the store)
    assert prop.kind == "new" and prop.identity_id is None and prop.candidate_id == cand
    assert sorted(tr.track_id for tr in prop.tracks) == sorted(t[1:3])
    for tr in prop.tracks:
        assert tr.crops == tr.unlabelled == len(tracks[tr.track_id]) and tr.crop_id in tracks[tr.track_id]
        assert tr.image_path.is_file()
    assert prop.crops_to_label == len(tracks[t[1]]) + len(tracks[t[2]])

    # one key: the new character (gender chosen) on the crop, its track strip and both other tracks
    strip = tracks[t[0]][1:]
    action = svc.confirm_proposal(crop, gender="female", crops=strip)
    with project.session() as s:
        hero = s.scalar(select(Identity).where(Identity.exemplar_crop_id == crop))
        assert hero is not None and hero.gender == "female"
        hero_id = hero.id
    everything = tracks[t[0]] + tracks[t[1]] + tracks[t[2]]
    assert len(action.crop_ids) == len(everything) and len(action.labels) == 2 * len(everything)
    assert labels(project, crop) == {"identity": (str(hero_id), "clicked"), "gender": ("female", "clicked")}
    for c in everything[1:]:
        assert labels(project, c) == {"identity": (str(hero_id), "propagated"), "gender": ("female", "propagated")}
    for c in tracks[t[3]]:  # another cluster: untouched
        assert labels(project, c) == {}
    ident, by, at = candidate(project, cand)
    assert ident == hero_id and by == svc.annotator.id and at is not None

    # a crop of the cluster now proposes the confirmed character (nothing left to label on the other tracks)
    again = svc.proposal(tracks[t[1]][0])
    assert again.kind == "confirmed" and again.identity_id == hero_id and again.gender == "female" and again.tracks == ()

    # ONE undo restores every label and the candidate's confirmation; redo re-applies both
    undone = svc.undo()
    assert sorted(undone.crop_ids) == sorted(everything)
    assert all(labels(project, c) == {} for c in everything)
    assert candidate(project, cand) == (None, None, None)
    assert svc.proposal(crop).kind == "new"  # the character exists, but nothing links the cluster to it now
    svc.redo()
    assert all(labels(project, c)["identity"][0] == str(hero_id) for c in everything)
    assert candidate(project, cand)[0] == hero_id
    svc.undo()  # the redo is undoable in turn, candidate included
    assert candidate(project, cand) == (None, None, None) and labels(project, crop) == {}
    svc.close()


def test_click_leaves_a_track_out_and_it_is_proposed_later(annotated):
    project, _ = annotated
    tracks = crops_by_track(project, FIRST_MOVIE)
    t = sorted(tracks)
    make_candidate(project, t[:3])
    svc = AnnotationService(project, "ann_id")
    hero = svc.new_identity(tracks[t[3]][0], "male")  # an existing character elsewhere in the movie
    crop = tracks[t[0]][0]
    # the annotator picks the character (exemplar click) and leaves the wrong track t[2] out
    svc.confirm_proposal(crop, hero.id, tracks=[t[1]])
    for c in tracks[t[0]][:1] + tracks[t[1]]:
        assert labels(project, c)["identity"][0] == str(hero.id)
    assert all(labels(project, c) == {} for c in tracks[t[2]])
    assert labels(project, tracks[t[0]][1]) == {}  # no strip crops given: the rest of its own track stays
    # whole-track mode: the rest of its own track too, but a crop left out in the strip
    svc.confirm_proposal(tracks[t[0]][1], hero.id, tracks=[], whole_track=True, exclude=[tracks[t[0]][-1]])
    assert all(labels(project, c)["identity"][0] == str(hero.id) for c in tracks[t[0]][:-1])
    assert labels(project, tracks[t[0]][-1]) == {}
    left_out = svc.proposal(tracks[t[2]][0])
    assert left_out.kind == "confirmed" and left_out.identity_id == hero.id
    with pytest.raises(UserError, match="not in the cluster"):
        svc.confirm_proposal(crop, hero.id, tracks=[t[3]])
    with pytest.raises(UserError, match="not in the track"):
        svc.confirm_proposal(crop, hero.id, crops=tracks[t[3]][:1])
    svc.close()
    # confirming needs the right to label identities
    age = AnnotationService(project, "ann_age")
    with pytest.raises(AnnotationPermissionError):
        age.confirm_proposal(tracks[t[2]][0], gender="male")
    assert all(labels(project, c) == {} for c in tracks[t[2]])
    age.close()


def test_similar_character_by_face_and_exemplars_ranked_by_face(annotated):
    project, _ = annotated
    rng = np.random.default_rng(7)
    tracks = crops_by_track(project, FIRST_MOVIE)
    t = sorted(tracks)
    alice, bob = person(rng), person(rng)
    for tr, who in ((t[0], alice), (t[1], bob), (t[2], alice), (t[3], bob)):
        set_faces(project, tr, who, rng)
    svc = AnnotationService(project, "ann_id")
    a = svc.new_identity(tracks[t[0]][0], "female", also=tracks[t[0]][1:])
    b = svc.new_identity(tracks[t[1]][0], "male", also=tracks[t[1]][1:])
    cand = make_candidate(project, [t[2]])

    prop = svc.proposal(tracks[t[2]][0])
    assert prop.kind == "similar" and prop.identity_id == a.id and prop.candidate_id == cand
    # the distance is the Euclidean distance of mean descriptors (reference: scikit-learn)
    with project.session() as s:
        def mean_face(ids):
            blobs = s.scalars(select(Crop.face_embedding).where(Crop.id.in_(ids))).all()
            return np.mean([np.frombuffer(x, "<f2").astype(np.float32) for x in blobs], axis=0)

        ref = euclidean_distances([mean_face(tracks[t[2]])], [mean_face(tracks[t[0]])])[0, 0]
    assert prop.distance == pytest.approx(ref, abs=1e-4) and prop.distance < FACE_MATCH_DISTANCE

    # a crop of bob's second track: the face puts bob first whatever the colour histograms say
    ex = svc.exemplars(tracks[t[3]][0])
    assert [e.identity_id for e in ex] == [b.id, a.id] and ex[0].similarity > 0.9 > ex[1].similarity

    # a stranger's face matches nobody: a new character is proposed
    stranger = t[4] if len(t) > 4 else t[3]
    set_faces(project, stranger, person(rng), rng)
    make_candidate(project, [stranger])
    svc.close()
    svc = AnnotationService(project, "ann_id")  # a fresh session: the faces changed behind the first one's cache
    far = svc.proposal(tracks[stranger][0])
    assert far.kind == "new" and far.distance is not None and far.distance > FACE_MATCH_DISTANCE
    svc.close()


# -- item 3: static attributes once per character -------------------------------------------------
def test_character_attribute_inherited_overridden_by_hand_and_by_later_crops(annotated):
    project, _ = annotated
    tracks = crops_by_track(project, FIRST_MOVIE)
    t = sorted(tracks)
    ident = AnnotationService(project, "ann_id")
    hero = ident.new_identity(tracks[t[0]][0], "male", also=tracks[t[0]][1:])
    age = AnnotationService(project, "ann_age")
    hand = tracks[t[0]][-1]
    age.set_label(hand, "age", "child")  # a person overrides one crop by hand first

    ctx = age.character_context(tracks[t[0]][0])
    assert (ctx.identity_id, ctx.character_crops, ctx.value) == (hero.id, len(tracks[t[0]]), None)
    action = age.label_character_or_track(tracks[t[0]][0], "young_adult")
    assert len(action.crop_ids) == len(tracks[t[0]]) - 1  # every crop of the character but the hand-set one
    with project.session() as s:
        assert s.get(Identity, hero.id).attributes == {"age": "young_adult"}
    for c in tracks[t[0]][:-1]:
        assert labels(project, c)["age"] == ("young_adult", "inherited")
    assert labels(project, hand)["age"] == ("child", "clicked")

    # a later character-level change moves the inherited labels, never the hand-set one
    age.set_character_attribute(hero.id, "age", "middle_aged")
    assert labels(project, tracks[t[0]][0])["age"] == ("middle_aged", "inherited")
    assert labels(project, hand)["age"] == ("child", "clicked")

    # crops assigned to the character later inherit it (the identity labeller writes them)
    ident.assign_identity(tracks[t[1]], hero.id)
    for c in tracks[t[1]]:
        assert labels(project, c)["age"] == ("middle_aged", "inherited")
    # ... also through a whole-cluster confirm
    make_candidate(project, [t[2]])
    ident.confirm_proposal(tracks[t[2]][0], hero.id, crops=tracks[t[2]][1:])
    for c in tracks[t[2]]:
        assert labels(project, c)["age"] == ("middle_aged", "inherited")
    # ... and through a merge of another character into it
    other = ident.new_identity(tracks[t[3]][0], "male", also=tracks[t[3]][1:])
    assert "age" not in labels(project, tracks[t[3]][0])
    ident.merge_identities(hero.id, other.id)
    for c in tracks[t[3]]:
        assert labels(project, c)["age"] == ("middle_aged", "inherited")

    # undo of the character-level change: labels and the character's value come back
    age.undo()
    with project.session() as s:
        assert s.get(Identity, hero.id).attributes == {"age": "young_adult"}
    assert labels(project, tracks[t[0]][0])["age"] == ("young_adult", "inherited")

    # one attribute per annotator: the age annotator may not set physique, nor the identity one age
    with pytest.raises(AnnotationPermissionError):
        age.set_character_attribute(hero.id, "physique", "thin")
    with pytest.raises(AnnotationPermissionError):
        ident.set_character_attribute(hero.id, "age", "child")
    with pytest.raises(UserError, match="not set per character"):
        age.set_character_attribute(hero.id, "expression", "neutral")
    ident.close()
    age.close()


def test_track_without_character_labelled_in_one_key(annotated):
    project, _ = annotated
    tracks = crops_by_track(project, FIRST_MOVIE)
    t = sorted(tracks)
    crops = tracks[t[0]]
    age = AnnotationService(project, "ann_age")
    age.set_label(crops[1], "age", "elderly")  # hand-set first: stays
    ctx = age.character_context(crops[0])
    assert ctx.identity_id is None and ctx.track_crops == len(crops)
    action = age.label_character_or_track(crops[0], "teenager")
    assert labels(project, crops[0])["age"] == ("teenager", "clicked")
    assert labels(project, crops[1])["age"] == ("elderly", "clicked")
    for c in crops[2:]:
        assert labels(project, c)["age"] == ("teenager", "propagated")
    assert sorted(action.crop_ids) == sorted([crops[0], *crops[2:]])
    for c in tracks[t[1]]:
        assert "age" not in labels(project, c)
    age.undo()
    assert all("age" not in labels(project, c) for c in [crops[0], *crops[2:]])
    assert labels(project, crops[1])["age"] == ("elderly", "clicked")
    age.close()
