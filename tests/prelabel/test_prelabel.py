"""``portrait prelabel`` on a small real project with a tiny trained checkpoint (SQLite and PostgreSQL):
predictions for exactly the unlabelled crops, values inside the taxonomy, confidences in (0, 1] equal to
the model's own softmax / sigmoid decisions, no label written, reruns skip; the grid query the views use.

References: scipy.special.softmax / expit for the decision rules; the checkpoint's model run directly on a
crop for the stored values; hashlib for the model digest; current labels read through store.current_labels.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from scipy.special import expit, softmax
from sqlalchemy import delete, func, select, update

from portrait_builder.cli import main
from portrait_builder.errors import UserError
from portrait_builder.store import Annotator, Crop, Label, Prediction, add_label, current_labels
from portrait_builder.store.predictions import (
    grid_page,
    predicted_values,
    predictions_for,
    store_predictions,
)
from portrait_builder.train.prelabel import multi_decisions, prelabel, single_decisions

ATTRIBUTES = ("gender", "age", "physique", "height", "body_posture", "arm_posture", "expression")


def test_decisions_match_scipy():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(200, 7))
    index, conf = single_decisions(torch.from_numpy(logits).float())
    ref = softmax(logits.astype(np.float32).astype(np.float64), axis=1)
    assert (index == ref.argmax(1)).all()
    np.testing.assert_allclose(conf, ref.max(1), rtol=1e-12)

    logits[:5] = -4.0  # no value above 0.5: the top one is chosen anyway
    chosen, conf = multi_decisions(torch.from_numpy(logits).float())
    p = expit(logits.astype(np.float32).astype(np.float64))
    want = p > 0.5
    want[np.arange(len(p)), p.argmax(1)] = True
    assert (chosen == want).all() and chosen[:5].sum() == 5
    np.testing.assert_allclose(conf, np.where(want, p, 1 - p).min(1), rtol=1e-12)
    assert ((conf > 0) & (conf <= 1)).all()


def _snapshot(project):
    with project.session() as s:
        labels = s.scalar(select(func.count()).select_from(Label)), s.scalar(select(func.max(Label.id)))
        preds = {(r.crop_id, r.attribute): r for r in s.scalars(select(Prediction))}
        current = current_labels(s)
        crops = list(s.scalars(select(Crop.id)))
    return labels, preds, current, crops


@pytest.mark.slow  # the tiny checkpoint trains once per session (~15-30 s)
def test_prelabel_predicts_unlabelled_crops_only_writes_no_label_and_resumes(project, built, tiny_checkpoint):
    labels_before, _, current, crops = _snapshot(project)
    result = prelabel(project, tiny_checkpoint, progress=False)
    labels_after, preds, current_after, _ = _snapshot(project)
    assert labels_after == labels_before and current_after == current  # no label, no current label moved

    digest = hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    assert result.model == digest and result.attributes == ATTRIBUTES
    tax = project.taxonomy
    for attr in ATTRIBUTES:
        unlabelled = {c for c in crops if attr not in current.get(c, {})}
        assert unlabelled, attr  # the project leaves crops of every attribute unlabelled
        assert {c for c, a in preds if a == attr} == unlabelled, attr
        assert result.stored[attr] == len(unlabelled) and result.skipped[attr] == 0
    assert "identity" not in {a for _, a in preds}
    for (_crop, attr), row in preds.items():
        assert row.model == digest and 0 < row.confidence <= 1
        assert tax.encode(attr, tax.decode(attr, row.value)) == row.value  # inside the taxonomy, canonical
        names = tax.decode(attr, row.value)
        assert tax.attribute(attr).unsure_value not in (names if isinstance(names, list) else [names])

    # the stored values are the model's own: run the checkpoint on one crop directly
    from PIL import Image

    from portrait_builder.train.augment import Normalize
    from portrait_builder.train.engine import load_checkpoint, model_from_checkpoint

    crop_id = min(c for c, a in preds if a == "expression")
    model, config, tasks = model_from_checkpoint(load_checkpoint(tiny_checkpoint))
    with project.session() as s:
        path = s.get(Crop, crop_id).path
    im = Image.open(project.crop_root / path).convert("RGB").resize(config.input_size[::-1], Image.Resampling.BILINEAR,
                                                                     reducing_gap=None)
    x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None]
    with torch.no_grad():
        logits = model.eval()(Normalize()(x))["logits"]
    by_name = {t.name: t for t in tasks}
    for attr in ("body_posture", "expression"):
        out = logits[attr].double().numpy()[0]
        row = preds[(crop_id, attr)]
        if attr == "expression":
            p = expit(out)
            pick = p > 0.5
            pick[p.argmax()] = True
            assert row.value == "|".join(n for n, on in zip(by_name[attr].classes, pick, strict=True) if on)
            assert row.confidence == pytest.approx(np.where(pick, p, 1 - p).min(), abs=1e-5)
        else:
            p = softmax(out)
            assert row.value == by_name[attr].classes[int(p.argmax())]
            assert row.confidence == pytest.approx(p.max(), abs=1e-5)

    # rerun: nothing to do; an interrupted run (3 crops without body_posture) and another checkpoint's
    # prediction (re-predicted with this one) are completed, nothing else is touched
    again = prelabel(project, tiny_checkpoint, progress=False)
    assert again.crops == 0 and again.skipped == result.stored and sum(again.stored.values()) == 0
    lost = sorted(c for c, a in preds if a == "body_posture")[:3]
    foreign = max(c for c, a in preds if a == "age")
    with project.write() as s:
        s.execute(delete(Prediction).where(Prediction.attribute == "body_posture", Prediction.crop_id.in_(lost)))
        s.execute(update(Prediction).where(Prediction.crop_id == foreign, Prediction.attribute == "age")
                  .values(model="0" * 64, value="child"))
    third = prelabel(project, tiny_checkpoint, attributes=["body_posture", "age"], progress=False)
    assert third.stored == {"body_posture": 3, "age": 1} and third.crops == 4
    _, preds3, _, _ = _snapshot(project)
    assert preds3.keys() == preds.keys()
    assert preds3[(foreign, "age")].model == digest and preds3[(foreign, "age")].value == preds[(foreign, "age")].value
    untouched = [k for k in preds if k[1] not in ("body_posture", "age")]
    assert all(preds3[k].created_at == preds[k].created_at for k in untouched)
    assert labels_after == _snapshot(project)[0]


@pytest.mark.slow  # the tiny checkpoint trains once per session (~15-30 s)
def test_prelabel_cli_and_its_one_line_errors(project, built, tiny_checkpoint, capsys):
    root = str(project.root)
    code = main(["prelabel", root, "--checkpoint", str(tiny_checkpoint), "--attributes", "arm_posture, expression",
                 "--batch-size", "8", "--device", "cpu", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "arm_posture: 6 predictions stored" in out and "expression: 6 predictions stored" in out
    with project.session() as s:
        assert set(s.scalars(select(Prediction.attribute).distinct())) == {"arm_posture", "expression"}

    def one_line(argv, needle):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("portrait: error: ") and needle in err[0], err

    ckpt = ["--checkpoint", str(tiny_checkpoint)]
    one_line(["prelabel", root, *ckpt, "--attributes", "mood"], "valid: gender, age, physique")
    one_line(["prelabel", root, *ckpt, "--attributes", "identity"], "identity is not predicted")
    one_line(["prelabel", root, *ckpt, "--attributes", " , "], "no attribute named")
    one_line(["prelabel", root, "--checkpoint", str(project.root / "nope.pt")], "checkpoint not found")
    one_line(["prelabel", root, *ckpt, "--batch-size", "0"], "--batch-size must be >= 1")
    if not torch.cuda.is_available():
        one_line(["prelabel", root, *ckpt, "--device", "cuda"], "no CUDA GPU")
    with project.session() as s:
        path = s.scalars(select(Crop.path).order_by(Crop.id)).first()
    (project.crop_root / path).unlink()
    one_line(["prelabel", root, *ckpt, "--no-progress"], "crop images are missing")


def test_grid_pages_unlabelled_crops_by_confidence(project, built):
    """The grid view's query against a Python reference: unlabelled crops predicted a value, confidence
    descending then crop id, pages by key so that accepting a page never skips a crop."""
    crops = built.crops
    rng = np.random.default_rng(1)
    conf = np.round(rng.uniform(0.3, 1.0, len(crops)), 1)  # rounded: ties, broken by crop id (highest first)
    values = ["standing" if i % 4 else "sitting" for i in range(len(crops))]
    tax = project.taxonomy
    with project.write() as s:
        # height: no crop of the project has a height label; two get one, a third is cleared again
        ann = s.scalars(select(Annotator.id)).first()
        add_label(s, tax, crops[1], "height", "tall", annotator_id=ann)
        add_label(s, tax, crops[2], "height", "unsure", annotator_id=ann)
        add_label(s, tax, crops[3], "height", "tall", annotator_id=ann)
        add_label(s, tax, crops[3], "height", None, annotator_id=ann, source="undo")
        store_predictions(s, [(c, "height", "tall" if v == "standing" else "short", float(p))
                              for c, v, p in zip(crops, values, conf, strict=True)], "f" * 64)
    labelled = {crops[1], crops[2]}
    ref = sorted(((float(p), c) for c, v, p in zip(crops, values, conf, strict=True)
                  if v == "standing" and c not in labelled), key=lambda t: (-t[0], -t[1]))

    with project.session() as s:
        counts = {v.value: v.crops for v in predicted_values(s, "height")}
        assert counts == {"tall": len(ref), "short": sum(v == "sitting" for v in values)}
        seen, after = [], None
        while True:
            page = grid_page(s, "height", "tall", limit=5, after=after, count=True)
            assert page.total == len(ref) and len(page.crops) <= 5
            seen += [(g.confidence, g.crop_id) for g in page.crops]
            if page.next_after is None:
                break
            after = page.next_after
        assert seen == ref
        first = grid_page(s, "height", "tall", limit=5)
        assert first.total is None  # not counted unless asked
        assert all(g.path and g.video_id and g.track_id for g in first.crops)
        one_video = grid_page(s, "height", "tall", limit=100, video_id=first.crops[0].video_id)
        assert {g.crop_id for g in one_video.crops} == {c for _, c in ref if s.get(Crop, c).video_id
                                                         == first.crops[0].video_id}
        got = predictions_for(s, [crops[0], crops[1], 10**9], "height")
        assert set(got) == {crops[0], crops[1]} and got[crops[0]].confidence == pytest.approx(conf[0])
    # the annotator accepts the first page: the next first page starts where the old second page did
    with project.write() as s:
        for g in first.crops:
            add_label(s, tax, g.crop_id, "height", "tall", annotator_id=ann, provenance="accepted")
    with project.session() as s:
        page = grid_page(s, "height", "tall", limit=5, count=True)
        assert [(g.confidence, g.crop_id) for g in page.crops] == ref[5:10] and page.total == len(ref) - 5
    with pytest.raises(ValueError):
        with project.session() as s:
            grid_page(s, "height", "tall", limit=0)


@pytest.mark.slow  # the tiny checkpoint trains once per session (~15-30 s)
def test_prelabel_refuses_an_unknown_device(project, built, tiny_checkpoint):
    with pytest.raises(UserError, match="unknown device 'tpu'; valid: auto, cpu, cuda"):
        prelabel(project, tiny_checkpoint, device="tpu", progress=False)
