"""Feature space split sizes, model outputs, samplers, the schedule and the Table 4 configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from portrait_builder.errors import UserError
from portrait_builder.resources import pipelines_dir
from portrait_builder.taxonomy import load_taxonomy
from portrait_builder.train import TrainConfig, load_config
from portrait_builder.train.data import build_tasks
from portrait_builder.train.engine import lr_at
from portrait_builder.train.model import PortraitNet, split_feature_space
from portrait_builder.train.samplers import SAMPLERS, create_sampler

VARIANTS = ["single_task", "sim_mtl", "fss", "fss_triplet", "fss_br", "fss_br_uncer", "pk", "shuffle", "r50", "tiny"]


def _tasks(n_ids: int = 640):
    import pandas as pd

    return build_tasks(load_taxonomy(), pd.Series(range(1, n_ids + 1)))


def test_baseline_feature_split_sizes_hrnet_w32():
    split = split_feature_space(2048, _tasks(), appearance_attr_fraction=0.5, posture_shared_fraction=0.5)
    size = {k: len(v) for k, v in split.items()}
    # Aspects in proportion to their tasks: appearance 5, posture 2, emotion 1 -> 1280 / 512 / 256.
    assert split["identity"] == list(range(0, 1280))  # re-id reads the whole appearance slice
    # Half of appearance (640) split 2:5:3:3 by classes (largest remainder), the rest unassigned.
    assert [size[k] for k in ("gender", "age", "physique", "height")] == [98, 246, 148, 148]
    app = [set(split[k]) for k in ("gender", "age", "physique", "height")]
    assert all(not (a & b) for i, a in enumerate(app) for b in app[i + 1:])
    assert max(max(s) for s in app) == 639  # dims 640..1279 belong to re-id only
    # Posture 512: 256 shared, 128 own each (7 and 7 classes); both contiguous.
    shared = set(split["body_posture"]) & set(split["arm_posture"])
    assert len(shared) == 256 and size["body_posture"] == size["arm_posture"] == 384
    assert split["body_posture"] == list(range(1280, 1664)) and split["arm_posture"] == list(range(1408, 1792))
    assert split["expression"] == list(range(1792, 2048))


def test_baseline_feature_split_small_dim_keeps_every_slice_non_empty():
    split = split_feature_space(96, _tasks(10))
    assert all(len(v) >= 1 for v in split.values())
    assert max(max(v) for v in split.values()) == 95


@pytest.mark.parametrize("architecture", ["fss", "shared", "single_task"])
def test_baseline_model_outputs_per_task(architecture):
    tasks = _tasks(7)
    torch.manual_seed(0)
    model = PortraitNet(TrainConfig(backbone="test_efficientnet", architecture=architecture), tasks).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, 64, 32))
    assert set(out["logits"]) == {t.name for t in tasks}
    for t in tasks:
        assert out["logits"][t.name].shape == (3, t.num_classes)
        assert out["features"][t.name].shape == (3, len(model.split[t.name]))
        assert out["bn"][t.name].shape == out["features"][t.name].shape
    if architecture == "single_task":
        assert len(model.backbones) == len(tasks)
    # BNNeck: the BN shift is frozen, the classifier has no bias.
    neck = model.necks["identity"]
    assert not neck.bn.bias.requires_grad and neck.classifier.bias is None


def test_baseline_pretrained_loads_local_weights(tmp_path):
    import timm

    torch.manual_seed(1)
    donor = timm.create_model("test_efficientnet", pretrained=False, num_classes=0)
    torch.save(donor.state_dict(), tmp_path / "w.pt")
    model = PortraitNet(TrainConfig(backbone="test_efficientnet"), _tasks(3))
    model.load_pretrained(tmp_path / "w.pt")
    got = model.backbones["shared"].state_dict()
    assert all(torch.equal(got[k], v) for k, v in donor.state_dict().items())
    with pytest.raises(UserError, match="not found"):
        model.load_pretrained(tmp_path / "missing.pt")


def test_baseline_samplers():
    ids = np.array([1, 1, 1, 2, 2, 3, -1, -1, -1, -1, 3, 3, 2, 1, 4, 4])
    rnd = create_sampler("random", ids, batch_size=4, seed=3)
    rnd.set_epoch(0)
    first = list(rnd)
    assert sorted(i for b in first for i in b) == list(range(16))
    assert first == list(rnd)  # same epoch, same batches (resume)
    rnd.set_epoch(1)
    assert first != list(rnd)
    pk = create_sampler("pk", ids, batch_size=4, num_instances=2)
    for batch in pk:
        assert len(batch) == 4 and all(ids[i] >= 0 for i in batch)
        assert ids[batch[0]] == ids[batch[1]] and ids[batch[2]] == ids[batch[3]]  # K=2 of one identity
    shuffle = create_sampler("shuffle", ids, batch_size=4, num_instances=2)
    seen = [i for b in shuffle for i in b]
    assert {6, 7, 8, 9} & set(seen)  # unidentified crops take part
    # 14 identified items (each identity padded to a multiple of K=2) + 4 unidentified = 18 -> 4 full batches.
    assert len(seen) == 16 and len(shuffle) == 4
    with pytest.raises(ValueError, match="valid: random, pk, shuffle"):
        create_sampler("balanced", ids, 4)
    assert set(SAMPLERS) == {"random", "pk", "shuffle"}


def test_baseline_schedule_is_the_papers():
    c = TrainConfig()
    assert (c.lr, c.warmup_start_lr, c.warmup_epochs, c.milestones, c.epochs, c.batch_size) == (
        3.5e-4, 3.5e-5, 10, (30, 60, 90), 100, 128)
    assert lr_at(0, c) == pytest.approx(3.5e-5)
    assert lr_at(5, c) == pytest.approx(3.5e-5 + 0.5 * (3.5e-4 - 3.5e-5))
    assert lr_at(10, c) == pytest.approx(3.5e-4)
    assert lr_at(29, c) == pytest.approx(3.5e-4)
    assert lr_at(30, c) == pytest.approx(3.5e-5)
    assert lr_at(60, c) == pytest.approx(3.5e-6)
    assert lr_at(99, c) == pytest.approx(3.5e-7)


@pytest.mark.parametrize("variant", VARIANTS)
def test_baseline_every_table4_config_loads(variant):
    by_name = load_config(variant)
    by_path = load_config(pipelines_dir() / f"{variant}.yaml")
    assert by_name == by_path and by_name.name == variant
    assert TrainConfig.from_dict(by_name.to_dict()) == by_name


def test_baseline_config_errors_list_valid_names(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampler: balanced\n")
    with pytest.raises(UserError, match="valid: random, pk, shuffle"):
        load_config(bad)
    bad.write_text("learning_rate: 0.1\n")
    with pytest.raises(UserError, match="unknown key"):
        load_config(bad)
    with pytest.raises(UserError, match="valid variants"):
        load_config("no_such_variant")
