"""Evaluate a baseline checkpoint on a release's test crops: a Table-4-style row.

Re-id: query vs gallery on the identity task's BNNeck features, macro and micro CMC/mAP with
pHash-group exclusion. Attributes: macro F1 per attribute over all labelled test crops (query and
gallery); expression is multi-label (sigmoid > 0.5, at least the top one). PIQ from those.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from portrait_builder.cpus import fit_torch_threads, loader_workers
from portrait_builder.errors import UserError
from portrait_builder.evaluate import macro_f1, piq, query_ranks_from_features
from portrait_builder.release import load_release
from portrait_builder.train.augment import Normalize
from portrait_builder.train.data import CropDataset, encode_targets, group_array, identity_array
from portrait_builder.train.engine import load_checkpoint, model_from_checkpoint


@torch.no_grad()
def predict(model, dataset: CropDataset, device: torch.device, batch_size: int, progress: bool = False,
            num_workers: int = 0) -> dict:
    """Per-task predictions and the re-id features of every crop of ``dataset``."""
    from tqdm import tqdm

    model.eval().to(device)
    normalize = Normalize().to(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    feats, logits = [], {t.name: [] for t in model.tasks}
    reid_task = next((t.name for t in model.tasks if t.kind == "identity"), None)
    for batch in tqdm(loader, desc="features", unit="batch", disable=not progress, leave=False):
        with torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else nullcontext():
            out = model(normalize(batch["image"].to(device, non_blocking=True)))
        if reid_task is not None:
            feats.append(out["bn"][reid_task].float().cpu())
        for name, value in out["logits"].items():
            logits[name].append(value.float().cpu())
    return {
        "features": torch.cat(feats) if feats else None,
        "logits": {k: torch.cat(v) for k, v in logits.items()},
    }


def evaluate(
    release_dir: str | Path,
    checkpoint: str | Path,
    *,
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    progress: bool = True,
) -> dict:
    """A Table-4-style row of a checkpoint on a release's query/gallery crops.

    Keys: variant, epochs, macro_mAP, macro_rank1/5/10, micro_mAP, micro_rank1/5/10,
    f1_<attribute> for each attribute, ReID, App, Pos, Emo, PIQ (fractions in [0, 1]; NaN where
    undefined), num_query, num_gallery.
    """
    ckpt = load_checkpoint(checkpoint)
    model, config, tasks = model_from_checkpoint(ckpt)
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    fit_torch_threads()
    release = load_release(release_dir, require_manifest=False)
    test = release.subset("query", "gallery")
    if test.empty:
        raise UserError(f"release {release.root} has no query or gallery crops")
    dataset = CropDataset(release.root, test["file"].tolist(), config.input_size)
    pred = predict(model, dataset, dev, batch_size or config.eval_batch_size, progress,
                   loader_workers(config.num_workers))
    row: dict = {"variant": config.name, "epochs": int(ckpt["epoch"])}

    is_q = np.array(test["subset"] == "query", dtype=bool)
    is_g = np.array(test["subset"] == "gallery", dtype=bool)
    ids, groups = identity_array(test), group_array(test)
    ranked = None
    if pred["features"] is not None and is_q.any() and is_g.any():
        f = pred["features"]
        qf, gf = f[torch.from_numpy(np.flatnonzero(is_q))], f[torch.from_numpy(np.flatnonzero(is_g))]
        # one ranking pass; the macro and micro averages are both read from it
        ranked = query_ranks_from_features(qf, gf, ids[is_q], ids[is_g], groups[is_q], groups[is_g],
                                           metric=config.eval_metric, device=dev, show_progress=progress)
    for prefix, macro in (("macro", True), ("micro", False)):
        if ranked is None:
            scores = {"rank1": math.nan, "rank5": math.nan, "rank10": math.nan, "mAP": math.nan}
        else:
            scores = ranked.metrics(macro)
        row.update({f"{prefix}_{k}": v for k, v in scores.items()})

    targets = encode_targets(test, tasks)
    f1 = {}
    for t in tasks:
        if t.kind == "identity":
            continue
        y, logits = targets[t.name].numpy(), pred["logits"][t.name]
        if t.kind == "multi":
            mask = y[:, 0] >= 0
            prob = torch.sigmoid(logits).numpy()
            guess = prob > 0.5
            guess[np.arange(len(prob)), prob.argmax(1)] = True  # every labelled crop shows some expression
            f1[t.name] = macro_f1(y[mask] > 0.5, guess[mask], multilabel=True) if mask.any() else math.nan
        else:
            mask = y >= 0
            guess = logits.argmax(1).numpy()
            f1[t.name] = macro_f1(y[mask], guess[mask]) if mask.any() else math.nan
        row[f"f1_{t.name}"] = f1[t.name]
    row.update(piq(row["macro_rank1"], row["macro_mAP"], f1))
    row["num_query"] = int(is_q.sum())
    row["num_gallery"] = int(is_g.sum())
    return row


def format_row(row: dict) -> str:
    """The row as a small two-line table (percentages, like the paper's Table 4)."""
    cols = [("variant", "variant"), ("mAP", "macro_mAP"), ("R1", "macro_rank1"), ("R5", "macro_rank5"),
            ("R10", "macro_rank10"), ("mic.mAP", "micro_mAP"), ("mic.R1", "micro_rank1")]
    cols += [(k[3:], k) for k in row if k.startswith("f1_")]
    cols += [("ReID", "ReID"), ("App", "App"), ("Pos", "Pos"), ("Emo", "Emo"), ("PIQ", "PIQ")]
    heads, vals = [], []
    for head, key in cols:
        v = row.get(key)
        text = v if isinstance(v, str) else ("-" if v is None or (isinstance(v, float) and math.isnan(v))
                                               else f"{100 * v:.1f}")
        width = max(len(head), len(text))
        heads.append(head.rjust(width))
        vals.append(text.rjust(width))
    return " | ".join(heads) + "\n" + " | ".join(vals)
