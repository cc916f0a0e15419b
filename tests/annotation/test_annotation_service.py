"""The annotation service on SQLite and PostgreSQL: rights, identity operations, labels, undo/redo,
progress, review and Cohen's kappa (checked against scikit-learn)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sqlalchemy import func, select

from portrait_builder.annotation import AnnotationPermissionError, AnnotationService, add_annotator, list_annotators
from portrait_builder.errors import UserError
from portrait_builder.store import Crop, CurrentLabel, Identity, Label, current_labels, label_history


def _count_labels(project) -> int:
    with project.session() as s:
        return s.scalar(select(func.count()).select_from(Label))


def test_add_annotator_validates(project):
    with pytest.raises(UserError, match="valid roles"):
        add_annotator(project, "x", "boss")
    with pytest.raises(UserError, match="needs an assigned attribute"):
        add_annotator(project, "x", "annotator")
    with pytest.raises(UserError, match="valid attributes"):
        add_annotator(project, "x", "annotator", "hair")
    info = add_annotator(project, "x", "annotator", "age")
    assert (info.name, info.role, info.attribute) == ("x", "annotator", "age")
    with pytest.raises(UserError, match="already exists"):
        add_annotator(project, "x", "reviewer")
    add_annotator(project, "r", "reviewer")
    assert [(a.name, a.role, a.attribute) for a in list_annotators(project)] == [("r", "reviewer", None), ("x", "annotator", "age")]


def test_roles_are_enforced_in_the_service(annotated):
    project, ids = annotated
    age = AnnotationService(project, "ann_age")
    with pytest.raises(AnnotationPermissionError, match="may not write 'expression'"):
        age.set_label(ids[0], "expression", ["happiness"])
    with pytest.raises(AnnotationPermissionError):
        age.new_identity(ids[0], "male")
    with pytest.raises(AnnotationPermissionError, match="review needs"):
        age.correct_label(ids[0], "age", "child")
    with pytest.raises(AnnotationPermissionError, match="may not open"):
        AnnotationService(project, "ann_age", "expression")
    assert _count_labels(project) == 0  # nothing written by refused calls
    # identity annotators write gender with identity, but not gender alone through another attribute's value
    ident = AnnotationService(project, "ann_id")
    info = ident.new_identity(ids[0], "female")
    assert current_labels(project.session(), [ids[0]])[ids[0]] == {"identity": str(info.id), "gender": "female"}
    with pytest.raises(AnnotationPermissionError):
        ident.set_label(ids[1], "age", "child")
    # reviewers may correct any label and open any queue
    rev = AnnotationService(project, "rev", "expression")
    rev.correct_label(ids[0], "age", "elderly")
    with project.session() as s:
        assert label_history(s, ids[0], "age")[-1].source == "review"
    with pytest.raises(UserError, match="invalid value"):
        age.set_label(ids[0], "age", "ancient")


def test_identity_operations(annotated):
    project, ids = annotated
    svc = AnnotationService(project, "ann_id")
    first = svc.next_item()
    hero = svc.new_identity(first.id, "male", "Hero")
    with project.session() as s:
        row = s.get(Identity, hero.id)
        assert (row.exemplar_crop_id, row.gender, row.name) == (first.id, "male", "Hero")
        video_crops = list(s.scalars(select(Crop.id).where(Crop.video_id == first.video_id).order_by(Crop.id)))
    other = next(c for c in video_crops if c != first.id and svc.get_item(c).track_id != first.track_id)
    villain = svc.new_identity(other, "female", "Villain")

    # whole-track labelling with one crop left out
    targets = svc.track_targets(first.id)
    assert first.id in targets and len(targets) >= 3
    excluded = targets[-1]
    chosen = svc.track_targets(first.id, exclude=[excluded])
    svc.assign_identity(chosen, hero.id)
    labels = current_labels(project.session(), targets)
    for c in chosen:
        assert labels[c] == {"identity": str(hero.id), "gender": "male"}
    assert excluded not in labels
    svc.unknown_person([excluded], "female")
    assert current_labels(project.session(), [excluded])[excluded] == {"identity": "unknown", "gender": "female"}

    # exemplars: the video's characters with counts, most similar (cosine of float16 embeddings) first
    query = next(c for c in video_crops if c not in targets and c != other)
    exemplars = svc.exemplars(query)
    assert {e.identity_id for e in exemplars} == {hero.id, villain.id}
    counts = {e.identity_id: e.crop_count for e in exemplars}
    assert counts == {hero.id: len(chosen), villain.id: 1}
    with project.session() as s:
        emb = {c: np.frombuffer(s.get(Crop, c).embedding, "<f2").astype(np.float64) for c in (query, first.id, other)}
    cos = {k: float(emb[query] @ emb[k] / np.linalg.norm(emb[query]) / np.linalg.norm(emb[k])) for k in (first.id, other)}
    expected = sorted([(hero.id, cos[first.id]), (villain.id, cos[other])], key=lambda t: -t[1])
    assert [e.identity_id for e in exemplars] == [i for i, _ in expected]
    assert exemplars[0].similarity == pytest.approx(expected[0][1], abs=2e-3)
    assert all(e.image_path is not None and e.image_path.is_file() for e in exemplars)

    # an identity of another movie is refused by the store's validation
    with project.session() as s:
        foreign = s.scalar(select(Crop.id).where(Crop.video_id != first.video_id).limit(1))
    if foreign is not None:
        with pytest.raises(UserError, match="another video"):
            svc.assign_identity([foreign], hero.id)

    # unlabelled_only: the strip as a script's whole-track target list sees it
    strip = svc.track_crops(query, unlabelled_only=True)
    assert all(tc.identity is None and not tc.labelled for tc in strip)


def test_expression_is_multilabel(annotated):
    project, ids = annotated
    svc = AnnotationService(project, "ann_expr")
    svc.set_label([ids[0], ids[1]], "expression", ["surprise", "happiness"])
    assert svc.get_item(ids[0]).labels["expression"] == ["happiness", "surprise"]  # taxonomy order
    with project.session() as s:
        assert s.get(CurrentLabel, (ids[1], "expression")).value == "happiness|surprise"
    with pytest.raises(UserError, match="cannot be combined"):
        svc.set_label(ids[2], "expression", ["unsure", "anger"])


def test_undo_redo_from_history_survive_restart(annotated):
    project, ids = annotated
    svc = AnnotationService(project, "ann_age")
    svc.set_label(ids[0], "age", "child")
    svc.set_label(ids[0], "age", "elderly")
    svc.set_label([ids[1], ids[2]], "age", "teenager")  # one click, two crops

    def age(c):
        return current_labels(project.session(), [c]).get(c, {}).get("age")

    undone = svc.undo()
    assert sorted(undone.crop_ids) == sorted([ids[1], ids[2]])
    assert age(ids[1]) is None and age(ids[2]) is None
    svc.undo()
    assert age(ids[0]) == "child"
    # a restart rebuilds both stacks from the label history
    svc = AnnotationService(project, "ann_age")
    assert svc.can_undo and svc.can_redo
    svc.redo()
    assert age(ids[0]) == "elderly"
    svc.redo()
    assert age(ids[1]) == age(ids[2]) == "teenager"
    assert svc.redo() is None
    svc = AnnotationService(project, "ann_age")
    svc.undo()
    svc.undo()
    svc.undo()
    assert age(ids[0]) is None and age(ids[1]) is None
    assert svc.undo() is None
    with project.session() as s:
        sources = [r.source for r in label_history(s, ids[0], "age")]
    assert sources == ["app", "app", "undo", "redo", "undo", "undo"]  # history kept, append-only

    # undo leaves alone a label someone else changed since
    svc.set_label(ids[3], "age", "child")
    AnnotationService(project, "rev", "age").correct_label(ids[3], "age", "elderly")
    action = svc.undo()
    assert action.labels == () and age(ids[3]) == "elderly"


def test_undo_of_identity_clears_gender_too(annotated):
    project, ids = annotated
    svc = AnnotationService(project, "ann_id")
    hero = svc.new_identity(ids[0], "male")
    svc.assign_identity([ids[1]], hero.id)
    svc.undo()
    assert ids[1] not in current_labels(project.session(), [ids[1]])
    assert current_labels(project.session(), [ids[0]])[ids[0]]["gender"] == "male"


def test_progress_counts(annotated):
    project, ids = annotated
    svc = AnnotationService(project, "ann_age")
    before = svc.progress()
    assert (before.done, before.remaining, before.total) == (0, len(ids), len(ids))
    for _ in range(3):
        item = svc.next_item()
        svc.set_label(item.id, "age", "young_adult")
    p = svc.progress()
    assert (p.done, p.remaining, p.labels_last_hour) == (3, len(ids) - 3, 3)
    assert p.labels_per_hour == pytest.approx(3 * 60.0, rel=0.05)  # 3 labels in under the 60 s floor


def test_review_filters_and_correction(annotated):
    project, ids = annotated
    a = AnnotationService(project, "ann_expr")
    a.set_label(ids[0], "expression", ["happiness", "surprise"])
    a.set_label(ids[1], "expression", ["happiness"])
    a.set_label(ids[2], "expression", ["anger"])
    with pytest.raises(AnnotationPermissionError):
        a.review_labels("expression")
    rev = AnnotationService(project, "rev", "expression")
    rows = rev.review_labels("expression", value="happiness")
    assert [r.crop_id for r in rows] == [ids[0], ids[1]]
    assert rows[0].value == ["happiness", "surprise"] and rows[0].annotator == "ann_expr"
    assert rev.review_labels("expression", annotator="rev") == []
    rev.correct_label(ids[2], "expression", ["fear"])
    assert [r.crop_id for r in rev.review_labels("expression", annotator="rev")] == [ids[2]]
    with project.session() as s:
        hist = label_history(s, ids[2], "expression")
    assert [(h.value, h.source) for h in hist] == [("anger", "app"), ("fear", "review")]


def test_kappa_matches_sklearn(annotated):
    from sklearn.metrics import cohen_kappa_score

    project, ids = annotated
    rng = random.Random(7)
    values = ["child", "teenager", "young_adult", "middle_aged", "elderly"]
    a, b = AnnotationService(project, "ann_age"), AnnotationService(project, "ann_age2")
    seq_a, seq_b = [], []
    for c in ids[:24]:
        va = rng.choice(values)
        vb = va if rng.random() < 0.6 else rng.choice(values)
        a.set_label(c, "age", va)
        b.set_label(c, "age", vb)
        seq_a.append(va)
        seq_b.append(vb)
    a.set_label(ids[24], "age", "child")  # only one of them: not in the overlap
    # a withdrawn (undone) label leaves the overlap too
    b.set_label(ids[25], "age", "child")
    a.set_label(ids[25], "age", "child")
    a.undo()
    res = AnnotationService(project, "rev", "age").kappa("age", "ann_age", "ann_age2")
    assert res.n == 24
    assert res.kappa == pytest.approx(cohen_kappa_score(seq_a, seq_b), abs=1e-12)
    pairs = AnnotationService(project, "rev", "age").agreement("age")
    assert [(k.annotator_a, k.annotator_b, k.n) for k in pairs] == [("ann_age", "ann_age2", 24)]


def test_cohen_kappa_function_against_sklearn():
    from sklearn.metrics import cohen_kappa_score

    from portrait_builder.annotation import cohen_kappa

    rng = np.random.default_rng(3)
    for trial in range(20):
        n = int(rng.integers(2, 60))
        k = int(rng.integers(2, 6))
        a = [f"v{x}" for x in rng.integers(0, k, n)]
        b = [x if rng.random() < 0.5 else f"v{rng.integers(0, k)}" for x in a]
        ours, ref = cohen_kappa(a, b), cohen_kappa_score(a, b)
        assert (np.isnan(ours) and np.isnan(ref)) or ours == pytest.approx(ref, abs=1e-12), trial
    assert np.isnan(cohen_kappa(["a", "a"], ["a", "a"]))


def _track_reference(project, crop_id, limit):
    """The strip by hand: the other crops of the track, the ``limit`` nearest frames, in frame order."""
    with project.session() as s:
        me = s.get(Crop, crop_id)
        rows = s.execute(
            select(Crop.id, Crop.frame_index).where(Crop.track_id == me.track_id, Crop.id != crop_id)
        ).all()
        frame = me.frame_index
    nearest = sorted(rows, key=lambda r: (abs(r.frame_index - frame), r.frame_index))[:limit]
    return [r.id for r in sorted(nearest, key=lambda r: r.frame_index)]


def test_track_strip_shows_whole_track_with_labelled_crops_marked(annotated):
    project, ids = annotated
    svc = AnnotationService(project, "ann_id")
    with project.session() as s:  # the longest track, from its first crop
        track = s.scalar(select(Crop.track_id).group_by(Crop.track_id).order_by(func.count().desc(), Crop.track_id).limit(1))
        first = s.scalar(select(Crop.id).where(Crop.track_id == track).order_by(Crop.frame_index).limit(1))
    others = _track_reference(project, first, 10**6)
    assert len(others) >= 4
    hero = svc.new_identity(others[0], "male", "Hero")  # labels others[0]
    svc.unknown_person([others[2]], "female")

    _, strip = svc.identity_context(first, strip=10**6)
    # the whole track is shown (the old strip held only the unlabelled crops)
    assert [tc.id for tc in strip] == others
    marks = {tc.id: (tc.labelled, tc.identity, tc.label) for tc in strip}
    assert marks[others[0]] == (True, str(hero.id), "Hero")
    assert marks[others[2]] == (True, "unknown", "Unknown person")
    assert all(marks[c] == (False, None, None) for c in others if c not in (others[0], others[2]))
    assert [tc.id for tc in svc.track_crops(first, unlabelled_only=True)] == [
        c for c in others if c not in (others[0], others[2])
    ][:24]
    # limit keeps the nearest frames, labelled or not, in frame order
    assert [tc.id for tc in svc.track_crops(first, limit=3)] == _track_reference(project, first, 3)
    # an unnamed character reads as its id
    svc.rename_identity(hero.id, None)
    svc._characters.clear()  # the name cache lives CHARACTERS_TTL seconds; the test does not wait
    assert next(tc.label for tc in svc.track_crops(first) if tc.id == others[0]) == f"ID {hero.id}"

    # a second opinion sees that a crop is labelled, never the earlier answer
    second = AnnotationService(project, "boss", second_opinion=True)
    hidden = {tc.id: tc for tc in second.track_crops(first, limit=10**6)}
    assert hidden[others[0]].labelled and hidden[others[0]].identity is None and hidden[others[0]].label is None

    # relabelling a labelled strip crop on purpose is a new label through add_label: the history grows
    villain = svc.new_identity(first, "female", "Villain", also=[others[0]])
    with project.session() as s:
        history = label_history(s, others[0], "identity")
    assert [h.value for h in history] == [str(hero.id), str(villain.id)]
    svc.close()
    second.close()
