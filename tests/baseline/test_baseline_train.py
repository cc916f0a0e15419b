"""End to end on the synthetic release (tests/baseline/conftest.py): 2 CPU epochs of pipelines/tiny.yaml
(timm test_efficientnet, input downscaled from the 256x128 crops to 128x64, batch 16), then evaluation
above chance, checkpoint resume and the CLI."""

from __future__ import annotations

import json
import math
import os
import warnings

import numpy as np
import pytest
import torch

from portrait_builder.cli import main
from portrait_builder.evaluate import macro_f1, piq, reid_metrics
from portrait_builder.release import load_release
from portrait_builder.train import evaluate, load_config, train
from portrait_builder.train.data import Task, encode_targets, group_array, identity_array

pytestmark = pytest.mark.slow  # ~20-60 s on 2 shared CPU cores


@pytest.fixture(scope="module")
def trained(synthetic_release, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = train(synthetic_release, load_config("tiny"), out, progress=False)
    return synthetic_release, result


def _chance(release_dir, tasks):
    """Chance level on the test crops: re-id with random distances; per attribute the better of a
    uniform random guess and the constant majority guess (both averaged over draws where random)."""
    test = load_release(release_dir, require_manifest=False).subset("query", "gallery")
    rng = np.random.default_rng(0)
    q = np.array(test["subset"] == "query")
    ids, groups = identity_array(test), group_array(test)
    draws = [reid_metrics(rng.random((q.sum(), (~q).sum())), ids[q], ids[~q], groups[q], groups[~q])
             for _ in range(30)]
    out = {k: float(np.mean([d[k] for d in draws])) for k in ("rank1", "mAP")}
    y = encode_targets(test, tasks)
    f1 = {}
    for t in tasks:
        yt = y[t.name].numpy()
        if t.kind == "identity":
            continue
        if t.kind == "multi":
            yy = yt[yt[:, 0] >= 0] > 0.5
            f1[t.name] = float(np.mean([macro_f1(yy, rng.random(yy.shape) < 0.5, multilabel=True) for _ in range(30)]))
        else:
            yy = yt[yt >= 0]
            uniform = np.mean([macro_f1(yy, rng.integers(0, t.num_classes, len(yy))) for _ in range(30)])
            majority = macro_f1(yy, np.full(len(yy), np.bincount(yy).argmax()))
            f1[t.name] = float(max(uniform, majority))
    out["f1"] = f1
    out["PIQ"] = piq(out["rank1"], out["mAP"], f1)["PIQ"]
    return out


def test_baseline_two_epochs_lower_the_loss_and_beat_chance(trained):
    release_dir, result = trained
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 2 and losses[1] < losses[0]
    ckpt = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["config"]["backbone"] == "test_efficientnet"
    row = evaluate(release_dir, result.checkpoint, progress=False)
    chance = _chance(release_dir, [Task.from_dict(t) for t in ckpt["tasks"]])
    assert row["num_query"] == 16 and row["num_gallery"] == 64
    assert row["macro_mAP"] > chance["mAP"] + 0.2
    assert row["macro_rank1"] > chance["rank1"] + 0.2
    ours = np.mean([row[f"f1_{k}"] for k in chance["f1"]])
    assert ours > np.mean(list(chance["f1"].values())) + 0.03
    assert row["PIQ"] > chance["PIQ"]
    assert row["PIQ"] == pytest.approx((row["ReID"] + row["App"] + row["Pos"] + row["Emo"]) / 4)


def test_baseline_evaluate_workers_follow_the_available_cpus(trained, tmp_path, monkeypatch):
    # The paper configurations ask for 4 DataLoader workers; on a 1-CPU process evaluate uses 1 worker
    # and 1 torch thread, so PyTorch does not warn about exceeding the CPUs, and the numbers are the same.
    release_dir, result = trained
    ckpt = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    ckpt["config"]["num_workers"] = 4
    four = tmp_path / "four_workers.pt"
    torch.save(ckpt, four)
    plain = evaluate(release_dir, result.checkpoint, progress=False)
    threads = torch.get_num_threads()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            row = evaluate(release_dir, four, progress=False)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert not [w for w in caught if "worker" in str(w.message)], [str(w.message) for w in caught]
    assert row["macro_mAP"] == pytest.approx(plain["macro_mAP"]) and row["PIQ"] == pytest.approx(plain["PIQ"])


def test_baseline_resume_reproduces_an_uninterrupted_run(trained, tmp_path, capsys):
    release_dir, result = trained
    run = tmp_path / "run"
    assert main(["train", str(release_dir), "--config", "tiny", "--out", str(run), "--epochs", "1"]) == 0
    assert main(["train", str(release_dir), "--config", "tiny", "--out", str(run)]) == 2  # refuses to overwrite
    assert "--resume" in capsys.readouterr().err
    assert main(["train", str(release_dir), "--config", "tiny", "--out", str(run), "--resume"]) == 0
    resumed = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    straight = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert resumed["epoch"] == 2 and len(resumed["history"]) == 2
    for key, value in straight["model"].items():
        assert torch.allclose(resumed["model"][key].float(), value.float(), atol=1e-5), key
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in straight["history"]])
    capsys.readouterr()
    out_json = tmp_path / "row.json"
    assert main(["evaluate", str(release_dir), "--checkpoint", str(run / "last.pt"), "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "PIQ" in printed and "mAP" in printed
    row = json.loads(out_json.read_text())
    assert row["variant"] == "tiny" and 0 <= row["PIQ"] <= 1 and not math.isnan(row["macro_mAP"])


def test_baseline_cli_errors_are_one_line(synthetic_release, tmp_path, capsys):
    assert main(["evaluate", str(synthetic_release), "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["train", str(tmp_path), "--config", "tiny", "--out", str(tmp_path / "r")]) == 2
    assert "no annotations.parquet" in capsys.readouterr().err
