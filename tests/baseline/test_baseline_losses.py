"""Batch Rank loss, triplet loss and uncertainty weighting against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from portrait_builder.train.data import Task
from portrait_builder.train.losses import MultiTaskLoss, UncertaintyWeighting, batch_rank_loss, triplet_loss


def test_baseline_batch_rank_loss_hand_computed():
    # f0 = (1, 0), f1 = (0, 2) (cosine ignores length), f2 = (3, 0); labels 0, 0, 1.
    f = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    y = torch.tensor([0, 0, 1])
    # i=0: positive j=1, cos(f0,f1)=0; others c in {1, 2}: cos 0 and 1 -> -log(1 / (1 + e)).
    # i=1: positive j=0, cos 0; others c in {0, 2}: cos 0 and 0 -> -log(1/2).
    # i=2: no positive. Mean over N = 3.
    expected = (math.log(1 + math.e) + math.log(2)) / 3
    assert batch_rank_loss(f, y).item() == pytest.approx(expected, rel=1e-6)


def test_baseline_batch_rank_loss_sums_over_every_positive():
    f = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([4, 4, 4])
    # All cosines 1: each i has 2 positives, each -log(e / (2e)) = log 2; total 6 log 2 / 3.
    assert batch_rank_loss(f, y).item() == pytest.approx(2 * math.log(2), rel=1e-6)
    assert batch_rank_loss(f[:1], y[:1]).item() == 0.0


def test_baseline_triplet_loss_hand_computed():
    f = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 5.0]])
    y = torch.tensor([0, 0, 1, 1])
    # Hardest positive / negative distances: a0: 1 / 3, a1: 1 / sqrt(10), a2: 2 / 3, a3: 2 / 5.
    d = [1 - 3 + 0.3, 1 - math.sqrt(10) + 0.3, 2 - 3 + 0.3, 2 - 5 + 0.3]
    expected = sum(max(0.0, v) for v in d) / 4
    assert triplet_loss(f, y, margin=0.3).item() == pytest.approx(expected, abs=1e-6)


def test_baseline_uncertainty_weighting_value_and_gradients():
    weighting = UncertaintyWeighting(["a", "b", "c"])
    with torch.no_grad():
        weighting.log_vars.copy_(torch.tensor([0.5, -1.0, 2.0]))
    la = torch.tensor(2.0, requires_grad=True)
    lb = torch.tensor(3.0, requires_grad=True)
    total = weighting({"a": la, "b": lb})  # task c absent from this batch
    s = [0.5, -1.0]
    assert total.item() == pytest.approx(math.exp(-s[0]) * 2 + s[0] + math.exp(-s[1]) * 3 + s[1], rel=1e-6)
    total.backward()
    # d/ds_i = 1 - exp(-s_i) L_i ; d/dL_i = exp(-s_i); an absent task gets no gradient.
    grad = weighting.log_vars.grad
    assert grad[0].item() == pytest.approx(1 - math.exp(-0.5) * 2, rel=1e-6)
    assert grad[1].item() == pytest.approx(1 - math.exp(1.0) * 3, rel=1e-6)
    assert grad[2].item() == 0.0
    assert la.grad.item() == pytest.approx(math.exp(-0.5))
    assert lb.grad.item() == pytest.approx(math.exp(1.0))


def test_baseline_uncertainty_weights_converge_to_log_loss():
    # With fixed task losses L_i the optimum of exp(-s) L + s is s = log L.
    weighting = UncertaintyWeighting(["a", "b"])
    opt = torch.optim.SGD(weighting.parameters(), lr=0.1)
    for _ in range(500):
        opt.zero_grad()
        weighting({"a": torch.tensor(4.0), "b": torch.tensor(0.5)}).backward()
        opt.step()
    assert weighting.log_vars.detach().tolist() == pytest.approx([math.log(4.0), math.log(0.5)], abs=1e-3)


def test_baseline_multitask_loss_masks_missing_labels():
    tasks = [Task("gender", "single", "appearance", ("male", "female")),
             Task("expression", "multi", "emotion", ("neutral", "happiness", "sadness"))]
    torch.manual_seed(0)
    logits = {"gender": torch.randn(4, 2), "expression": torch.randn(4, 3)}
    outputs = {"logits": logits, "features": {"gender": torch.randn(4, 5), "expression": torch.randn(4, 5)}}
    targets = {"gender": torch.tensor([0, -1, 1, -1]),
               "expression": torch.tensor([[1.0, 0, 0], [-1, -1, -1], [0, 1, 1], [-1, -1, -1]])}
    loss = MultiTaskLoss(tasks, metric_loss="none", weighting="average")
    total, parts = loss(outputs, targets)
    ce = torch.nn.functional.cross_entropy(logits["gender"][[0, 2]], torch.tensor([0, 1]))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits["expression"][[0, 2]], targets["expression"][[0, 2]])
    assert parts["gender"].item() == pytest.approx(ce.item())
    assert parts["expression"].item() == pytest.approx(bce.item())
    assert total.item() == pytest.approx((ce.item() + bce.item()) / 2)
    with_br = MultiTaskLoss(tasks, metric_loss="batch_rank", metric_weight=0.5)
    _, parts_br = with_br(outputs, targets)
    br = batch_rank_loss(outputs["features"]["gender"][[0, 2]], torch.tensor([0, 1]))
    assert parts_br["gender"].item() == pytest.approx(ce.item() + 0.5 * br.item())
    # No label at all for a task in a batch: that task is left out, not a NaN.
    targets["gender"] = torch.full((4,), -1)
    total, parts = loss(outputs, targets)
    assert "gender" not in parts and math.isfinite(total.item())
    with pytest.raises(ValueError, match="valid: none, triplet, batch_rank"):
        MultiTaskLoss(tasks, metric_loss="arcface")
