"""Losses of the baseline, keyed by task like the model's outputs.

Per task i: L_i = L_cls + metric_weight * L_metric, with L_cls the cross-entropy (single-label,
identity) or binary cross-entropy (multi-label expression) over the labelled samples only, and
L_metric the triplet or Batch Rank loss on the task's features (single-label tasks). The total is
the average of the L_i or the uncertainty-weighted sum sum_i exp(-s_i) L_i + s_i.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from portrait_builder.train.data import Task


def batch_rank_loss(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Batch Rank loss of the paper.

    L_BR = (1/N) sum_i sum_{j != i, y_j = y_i} -log( exp(cos(f_i, f_j)) / sum_{c != i} exp(cos(f_i, f_c)) )
    features (N, D), labels (N,). Zero when N < 2.
    """
    n = features.shape[0]
    if n < 2:
        return features.sum() * 0.0
    f = F.normalize(features.float(), dim=1)
    cos = f @ f.T
    eye = torch.eye(n, dtype=torch.bool, device=features.device)
    log_prob = torch.log_softmax(cos.masked_fill(eye, float("-inf")), dim=1)
    positive = (labels[:, None] == labels[None, :]) & ~eye
    return -(log_prob.masked_fill(~positive, 0.0)).sum() / n


def triplet_loss(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al.) on Euclidean distances; anchors without a positive
    or a negative in the batch are skipped. features (N, D), labels (N,)."""
    f = features.float()
    dist = torch.cdist(f, f).clamp(min=1e-12)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=f.device)
    pos_mask = same & ~eye
    neg_mask = ~same
    usable = pos_mask.any(1) & neg_mask.any(1)
    if not usable.any():
        return f.sum() * 0.0
    hardest_pos = dist.masked_fill(~pos_mask, float("-inf")).max(1).values
    hardest_neg = dist.masked_fill(~neg_mask, float("inf")).min(1).values
    return F.relu(hardest_pos - hardest_neg + margin)[usable].mean()


METRIC_LOSSES: dict[str, Callable[..., torch.Tensor] | None] = {
    "none": None,
    "triplet": triplet_loss,
    "batch_rank": batch_rank_loss,
}
WEIGHTINGS = ("average", "uncertainty")


class UncertaintyWeighting(nn.Module):
    """Learned task weighting (Kendall et al.): total = sum_i exp(-s_i) L_i + s_i, s_i initialised to 0."""

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = list(names)
        self.log_vars = nn.Parameter(torch.zeros(len(names)))

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        total = self.log_vars.sum() * 0.0  # keeps every s_i in the graph (DDP) even when a task is absent
        for i, name in enumerate(self.names):
            if name in losses:
                s = self.log_vars[i]
                total = total + torch.exp(-s) * losses[name] + s
        return total


class MultiTaskLoss(nn.Module):
    """forward(outputs of PortraitNet, targets {task: tensor}) -> (total, {task: L_i})."""

    def __init__(self, tasks: list[Task], metric_loss: str = "none", metric_weight: float = 0.5,
                 weighting: str = "average", triplet_margin: float = 0.3) -> None:
        super().__init__()
        if metric_loss not in METRIC_LOSSES:
            raise ValueError(f"unknown metric loss {metric_loss!r}; valid: {', '.join(METRIC_LOSSES)}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown task weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")
        self.tasks = list(tasks)
        self.metric_name = metric_loss
        self.metric_weight = metric_weight
        self.triplet_margin = triplet_margin
        self.weighting = UncertaintyWeighting([t.name for t in tasks]) if weighting == "uncertainty" else None

    def _metric(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.metric_name == "triplet":
            return triplet_loss(features, labels, self.triplet_margin)
        return batch_rank_loss(features, labels)

    def task_losses(self, outputs: dict, targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        losses = {}
        for t in self.tasks:
            logits = outputs["logits"][t.name].float()
            y = targets[t.name]
            if t.kind == "multi":
                mask = y[:, 0] >= 0
                if not mask.any():
                    continue
                loss = F.binary_cross_entropy_with_logits(logits[mask], y[mask])
            else:
                mask = y >= 0
                if not mask.any():
                    continue
                loss = F.cross_entropy(logits[mask], y[mask])
                if self.metric_name != "none":
                    loss = loss + self.metric_weight * self._metric(outputs["features"][t.name][mask], y[mask])
            losses[t.name] = loss
        return losses

    def forward(self, outputs: dict, targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        losses = self.task_losses(outputs, targets)
        # Parameters of heads whose task has no label in this batch still join the graph (x 0), so
        # DDP sees every parameter used.
        zero = sum(v.sum() for v in outputs["logits"].values()) * 0.0
        if not losses:
            return zero, losses
        if self.weighting is not None:
            return self.weighting(losses) + zero, losses
        return torch.stack(list(losses.values())).mean() + zero, losses
