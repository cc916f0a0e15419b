"""The simulated annotator labels a small film through the real annotation service: everything right,
and the count model charges for every decision and every correction.

Reference: the film's ground truth (portrait_builder/testing/effort.py), compared with what the store holds.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portrait_builder.annotation import AnnotationService
from portrait_builder.store import ChangePoint, Crop, CurrentLabel


def test_small_run_labels_everything_right(make_world, tiny_spec, effort):
    world = make_world(tiny_spec)
    result = effort.run_current(world)
    n = len(world.truth)
    assert result["accuracy"] == 1.0
    assert all(v == 1.0 for v in result["accuracy_per_attribute"].values())
    with world.project.session() as s:
        stored = s.execute(select(CurrentLabel.attribute).where(CurrentLabel.value.is_not(None))).scalars().all()
    assert len(stored) == n * len(effort.ATTRIBUTES)  # every crop, every attribute, from the store itself
    for attr, clicks in result["clicks"].items():
        assert clicks >= result["decisions"][attr] >= 1, attr
    # one decision per person at the very least for identity: a person is never free
    assert result["clicks"]["identity"] >= len({t.person for t in world.tracks.values()})
    if "change_points" in result["features"]:
        # every change of posture inside a track was marked where the truth changes, and each mark was paid for
        with world.project.session() as s:
            marked = s.execute(select(ChangePoint.track_id, ChangePoint.attribute, ChangePoint.frame_index)).all()
            frame = dict(s.execute(select(Crop.id, Crop.frame_index)).all())
        for attr in ("body_posture", "arm_posture"):
            truth = {(t.track_id, frame[t.crop_ids[p]]) for t in world.tracks.values() for p in t.change_points[attr]}
            assert {(m.track_id, m.frame_index) for m in marked if m.attribute == attr} == truth
            assert result["actions"][f"{attr}/change_point"] == len(truth)


@pytest.mark.slow  # one service call per crop and attribute
def test_baseline_costs_one_decision_per_crop_and_attribute(make_world, tiny_spec, effort):
    world = make_world(tiny_spec)
    result = effort.run_baseline(world)
    n = len(world.truth)
    assert result["accuracy"] == 1.0
    for attr in ("age", "physique", "height", "body_posture", "arm_posture"):
        assert result["clicks"][attr] == result["decisions"][attr] == n
    expr_keys = sum(effort.value_keys(True, t["expression"]) for t in world.truth.values())
    assert result["clicks"]["expression"] == expr_keys > n  # toggles + Enter; 0 alone for unsure
    chars = {t["identity"] for t in world.truth.values() if t["identity"].startswith("char:")}
    unknown = sum(t["identity"] == "unknown" for t in world.truth.values())
    # T once; one key per crop; the second key of "new identity" per character and of "unknown person" per crop
    assert result["clicks"]["identity"] == 1 + n + len(chars) + unknown


def test_a_wrong_suggestion_costs_a_correction_click(make_world, tiny_spec, effort, world_mod):
    """A tracker error puts a crop of one person into another person's track: the strip suggests it with
    the track; leaving it out is one click, and the moved crop still needs its own decision."""
    clean, broken = make_world(tiny_spec, "clean"), make_world(tiny_spec, "broken")
    # a crop of one character moved into an earlier track of another person in another shot (its frame is
    # free there): the queue (crop id order) reaches that track first, and its strip shows the intruder
    src = next(t for t in sorted(broken.tracks.values(), key=lambda t: -t.track_id) if t.character is not None)
    dst = next(t for t in sorted(broken.tracks.values(), key=lambda t: t.track_id)
               if t.person != src.person and t.shot != src.shot)  # fmt: skip
    moved = src.crop_ids[len(src.crop_ids) // 2]
    world_mod.move_crop(broken, moved, dst.track_id)

    def identity_clicks(world, **kw):
        tally = effort.Tally()
        with AnnotationService(world.project, "sim_identity") as service:
            effort.label_identity(effort.ServiceIdentityUI(service, tally), world, tally, **kw)
        return tally

    base = identity_clicks(clean)
    tally = identity_clicks(broken)
    assert base.actions["identity", "strip_toggle"] == 0
    assert tally.actions["identity", "strip_toggle"] == 1
    assert tally.clicks["identity"] >= base.clicks["identity"] + 2  # the correction + the moved crop's own decision
    acc, per = effort.accuracy(broken)
    assert per["identity"] == 1.0

    # an annotator who trusts the strip gets the moved crop wrong, and the scoring sees it
    lazy = make_world(tiny_spec, "lazy")
    world_mod.move_crop(lazy, moved, dst.track_id)
    identity_clicks(lazy, check_strip=False)
    _, per = effort.accuracy(lazy)
    assert per["identity"] == 1.0 - 1.0 / len(lazy.truth)
    with lazy.project.session() as s:
        assert s.scalar(select(Crop.track_id).where(Crop.id == moved)) == dst.track_id
