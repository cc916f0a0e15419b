"""Leased work queues: two annotators of one attribute never get the same crop, in one process and
in two real processes claiming at the same time; leases expire, are renewed and released."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from sqlalchemy import func, select

from portrait_builder.annotation import AnnotationService
from portrait_builder.store import Label, Lease


def _drain(svc: AnnotationService, value: str, seen: list[int]) -> bool:
    item = svc.next_item()
    if item is None:
        return False
    seen.append(item.id)
    svc.set_label(item.id, "age", value)
    return True


def test_two_annotators_never_share_a_crop(annotated):
    project, ids = annotated
    a = AnnotationService(project, "ann_age", batch=4)
    b = AnnotationService(project, "ann_age2", batch=4)
    got_a, got_b = [], []
    more_a = more_b = True
    while more_a or more_b:  # interleave clicks of the two annotators
        more_a = more_a and _drain(a, "child", got_a)
        more_b = more_b and _drain(b, "elderly", got_b)
    assert not set(got_a) & set(got_b)
    assert sorted(got_a + got_b) == sorted(ids)
    assert got_a and got_b
    with project.session() as s:
        per_crop = s.execute(select(Label.crop_id, func.count()).group_by(Label.crop_id)).all()
        assert {n for _, n in per_crop} == {1}  # every crop labelled exactly once
        assert s.scalar(select(func.count()).select_from(Lease)) == 0  # labelling gives the lease back


def test_leases_expire_renew_and_release(annotated):
    project, ids = annotated
    a = AnnotationService(project, "ann_age", lease_seconds=0.5, batch=3)
    b = AnnotationService(project, "ann_age2", batch=3)
    claimed = a.claim()
    assert claimed == ids[:3] and a.held_leases() == ids[:3]
    assert b.claim() == ids[3:6]  # a's crops are taken
    assert a.renew() == 3
    time.sleep(0.7)  # a's leases lapse: the next claim takes them over
    assert b.claim() == ids[:3]
    item = a.next_item()  # a no longer holds its first crops: they are skipped, not shown twice
    assert item is not None and item.id not in ids[:6]
    b.release()
    assert b.held_leases() == []


def test_undo_puts_the_crop_back_in_my_queue(annotated):
    project, ids = annotated
    a = AnnotationService(project, "ann_age", batch=3)
    first = a.next_item()
    a.set_label(first.id, "age", "child")
    a.undo()
    assert first.id in a.held_leases()
    assert a.next_item().id == first.id


WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from portrait_builder.annotation import AnnotationService
    from portrait_builder.store import Project
    root, name, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    svc = AnnotationService(Project.open(root), name, batch=2)
    while not go.exists():
        time.sleep(0.005)
    seen = []
    while True:
        item = svc.next_item()
        if item is None:
            break
        seen.append(item.id)
        svc.set_label(item.id, "age", "young_adult")
    print(json.dumps(seen))
    """
)


def test_two_processes_claim_concurrently(annotated, tmp_path):
    project, ids = annotated
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(project.root), name, str(go)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for name in ("ann_age", "ann_age2")
    ]
    time.sleep(1.0)  # both processes import and open the store, then start together
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    first, second = results
    assert not set(first) & set(second), "a crop was handed to both annotators"
    assert sorted(first + second) == sorted(ids)
    with project.session() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == len(ids)


def test_second_opinion_queue_gives_others_crops_for_kappa(annotated):
    from sklearn.metrics import cohen_kappa_score

    project, ids = annotated
    first = AnnotationService(project, "ann_age", batch=4)
    firsts = {}
    for value in ["child", "elderly", "child", "teenager", "elderly"]:
        item = first.next_item()
        first.set_label(item.id, "age", value)
        firsts[item.id] = value
    second = AnnotationService(project, "ann_age2", batch=2, second_opinion=True)
    seconds = {}
    while (item := second.next_item()) is not None:
        assert "age" not in item.labels  # the first answer is hidden
        seconds[item.id] = "child" if firsts[item.id] == "child" else "elderly"
        second.set_label(item.id, "age", seconds[item.id])
    assert sorted(seconds) == sorted(firsts)
    # nothing is left for the first annotator's own second opinion
    assert AnnotationService(project, "ann_age", second_opinion=True).next_item() is None
    res = AnnotationService(project, "rev", "age").kappa("age", "ann_age", "ann_age2")
    order = sorted(firsts)
    assert res.n == 5
    assert res.kappa == pytest.approx(cohen_kappa_score([firsts[c] for c in order], [seconds[c] for c in order]), abs=1e-12)
