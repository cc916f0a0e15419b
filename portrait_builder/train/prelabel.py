"""Pre-labels: run a trained baseline over a project's unlabelled crops and store its guesses as predictions.

A prediction is never a label: the annotator accepts it in the app (one key, or one key for a whole grid
of crops that share a predicted value). Identity is not predicted: the baseline's re-id head knows only
the train identities of its release; characters come from clustering embeddings instead.

Confidence of a single-label prediction: the softmax probability of the argmax class. Multi-label
(expression): the values whose sigmoid is above 0.5, and the top value when none is (the evaluation's
rule: every labelled crop shows some expression); its confidence is the lowest probability among the
per-value decisions it makes (p for a value chosen, 1 - p for a value left out), so one doubtful value
makes the whole prediction doubtful, as it would for the annotator who must accept the set as a whole.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from portrait_builder.common import file_digest
from portrait_builder.cpus import fit_torch_threads, loader_workers
from portrait_builder.errors import UserError
from portrait_builder.store.predictions import (
    may_write_predictions,
    predicted_crop_ids,
    store_predictions,
    unlabelled_crops,
)
from portrait_builder.store.project import StorePermissionError
from portrait_builder.taxonomy import Taxonomy
from portrait_builder.train.augment import Normalize
from portrait_builder.train.config import TrainConfig
from portrait_builder.train.data import CropDataset, Task
from portrait_builder.train.engine import load_checkpoint, model_from_checkpoint

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
MULTI_THRESHOLD = 0.5  # sigmoid probability above which a multi-label value is chosen (as in evaluation)


@dataclass(frozen=True)
class PrelabelResult:
    model: str  # sha256 of the checkpoint, as stored in predictions.model
    attributes: tuple[str, ...]
    crops: int  # crops run through the model
    stored: dict[str, int] = field(default_factory=dict)  # predictions written, per attribute
    skipped: dict[str, int] = field(default_factory=dict)  # unlabelled crops already predicted by this model


def single_decisions(logits: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) logits -> (N,) argmax class index and (N,) its softmax probability (float64)."""
    prob = torch.softmax(logits.double(), dim=1)
    conf, index = prob.max(dim=1)
    return index.numpy(), conf.numpy()


def multi_decisions(logits: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) logits -> (N, C) bool chosen values and (N,) confidence in (0, 1].

    A value is chosen when its sigmoid exceeds :data:`MULTI_THRESHOLD`; with none above, the top one is.
    The confidence is the smallest probability among the decisions: p for chosen, 1 - p for left out.
    """
    prob = torch.sigmoid(logits.double()).numpy()
    chosen = prob > MULTI_THRESHOLD
    chosen[np.arange(len(prob)), prob.argmax(1)] = True
    per_decision = np.where(chosen, prob, 1.0 - prob)
    return chosen, per_decision.min(axis=1)


def _device(name: str) -> torch.device:
    if name not in DEVICES:
        raise UserError(f"unknown device {name!r}; valid: {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is available here (use cpu or auto)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _tasks(tasks: Sequence[Task], taxonomy: Taxonomy, requested: Sequence[str] | None) -> list[Task]:
    """The checkpoint's attribute tasks to run: the requested ones, else every one the project's taxonomy has."""
    usable = {}
    for task in tasks:
        if task.kind == "identity":
            continue
        attr = taxonomy.by_name.get(task.name)
        if attr is None or attr.kind != task.kind or not set(task.classes) <= set(attr.classes):
            log.warning("the checkpoint's %s head does not match this project's taxonomy; not predicting it", task.name)
            continue
        usable[task.name] = task
    if requested is None:
        if not usable:
            raise UserError("the checkpoint predicts no attribute of this project's taxonomy")
        return list(usable.values())
    if not requested:
        raise UserError(f"no attribute named; the checkpoint can predict: {', '.join(usable)}")
    out = []
    for name in requested:
        if taxonomy.by_name.get(name) is not None and taxonomy.attribute(name).kind == "identity":
            raise UserError(f"{name} is not predicted: characters come from clustering tracks, not from the baseline")
        if name not in usable:
            raise UserError(f"the checkpoint cannot predict {name!r} for this project; valid: {', '.join(usable)}")
        if usable[name] not in out:
            out.append(usable[name])
    return out


def prelabel(
    project,
    checkpoint: str | Path,
    *,
    attributes: Sequence[str] | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    num_workers: int | None = None,
    progress: bool = True,
) -> PrelabelResult:
    """Predict every attribute in ``attributes`` (default: all the checkpoint predicts, identity aside) for
    the crops of ``project`` without a current label of it, and store one prediction per crop and attribute.

    Resumable: crops that already hold a prediction from this checkpoint (same sha256) are skipped; one
    transaction per batch, so an interruption loses at most one batch. Writes no label. On PostgreSQL
    only maintainers may store predictions; anyone else is refused before the model runs.
    """
    from tqdm import tqdm

    checkpoint = Path(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    # the model is built only when there is work: a rerun with nothing left returns in a moment
    config = TrainConfig.from_dict(ckpt["config"])
    tasks = [Task.from_dict(t) for t in ckpt["tasks"]]
    digest = file_digest(checkpoint)
    chosen = _tasks(tasks, project.taxonomy, attributes)
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    dev = _device(device)

    with project.refusals(), project.session() as s:
        if not may_write_predictions(s):
            who = project.login.name if project.login is not None else "this login"
            raise StorePermissionError(
                f"{who} may not store predictions: on a team store only maintainers run prelabel"
            )
        need: dict[int, set[str]] = {}
        paths: dict[int, str] = {}
        skipped: dict[str, int] = {}
        for task in chosen:
            done = predicted_crop_ids(s, task.name, digest)
            skipped[task.name] = 0
            for crop_id, path in unlabelled_crops(s, task.name):
                if crop_id in done:
                    skipped[task.name] += 1
                    continue
                need.setdefault(crop_id, set()).add(task.name)
                paths[crop_id] = path
    crop_ids = sorted(need)
    stored = {t.name: 0 for t in chosen}
    result_attrs = tuple(t.name for t in chosen)
    if not crop_ids:
        return PrelabelResult(digest, result_attrs, 0, stored, skipped)

    root = project.check_crop_root()
    files = [paths[c] for c in crop_ids]
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise UserError(f"{len(missing)} crop images are missing under {root} (first: {missing[0]})")

    model, _, _ = model_from_checkpoint(ckpt)
    fit_torch_threads()
    workers = loader_workers(config.num_workers if num_workers is None else num_workers)
    loader = DataLoader(CropDataset(root, files, config.input_size), batch_size=batch_size or config.eval_batch_size,
                        shuffle=False, num_workers=workers, pin_memory=dev.type == "cuda")
    model.eval().to(dev)
    normalize = Normalize().to(dev)
    taxonomy = project.taxonomy
    with torch.no_grad():
        for batch in tqdm(loader, desc="prelabel", unit="batch", disable=not progress):
            autocast = torch.autocast("cuda", dtype=torch.float16) if dev.type == "cuda" else nullcontext()
            with autocast:
                logits = model(normalize(batch["image"].to(dev, non_blocking=True)))["logits"]
            ids = [crop_ids[int(i)] for i in batch["index"]]
            rows = []
            for task in chosen:
                wanted = [k for k, c in enumerate(ids) if task.name in need[c]]
                if not wanted:
                    continue
                out = logits[task.name][wanted].float().cpu()
                if task.kind == "multi":
                    picks, conf = multi_decisions(out)
                    values = [taxonomy.encode(task.name, [n for n, on in zip(task.classes, row, strict=True) if on])
                              for row in picks]
                else:
                    index, conf = single_decisions(out)
                    values = [task.classes[int(i)] for i in index]
                rows += [(ids[k], task.name, v, float(p)) for k, v, p in zip(wanted, values, conf, strict=True)]
                stored[task.name] += len(wanted)
            project.run_write(lambda session, rows=rows: store_predictions(session, rows, digest))
    log.info("prelabel: %d crops, %s", len(crop_ids), stored)
    return PrelabelResult(digest, result_attrs, len(crop_ids), stored, skipped)


__all__ = ["DEVICES", "PrelabelResult", "multi_decisions", "prelabel", "single_decisions"]
