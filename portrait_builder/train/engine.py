"""Training loop of the baseline: schedule, AMP (CUDA only), DDP (torchrun), resumable checkpoints.

Checkpoints hold only plain types and tensors (model, optimizer, scheduler state, epoch, config,
tasks, feature split), so they load with ``torch.load(..., weights_only=True)``. They are written to
a temporary file and renamed, so a crash leaves the previous checkpoint intact; ``resume=True``
continues after the last completed epoch, with the same batches and augmentation seeds as an
uninterrupted run.

Several GPUs: ``torchrun --nproc_per_node N -m portrait_builder train RELEASE --config ... --out RUN``.
When WORLD_SIZE > 1 every rank draws the same global batch and trains on its share
(batch[rank::world]); gradients are averaged by DistributedDataParallel (NCCL on CUDA, gloo on CPU).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from portrait_builder.common import atomic_write, atomic_write_text
from portrait_builder.cpus import fit_torch_threads, loader_workers
from portrait_builder.errors import UserError
from portrait_builder.release import load_release
from portrait_builder.train.augment import TrainAugment
from portrait_builder.train.config import TrainConfig
from portrait_builder.train.data import CropDataset, Task, build_tasks, encode_targets, identity_array
from portrait_builder.train.losses import MultiTaskLoss
from portrait_builder.train.model import PortraitNet
from portrait_builder.train.samplers import create_sampler

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "portrait-baseline/1"
LAST = "last.pt"
# Settings a resumed run may change: more epochs extend the run; the others do not change the result.
RESUME_MAY_CHANGE = frozenset({"epochs", "num_workers", "eval_batch_size", "cache_max_crops"})


def lr_at(epoch: int, config: TrainConfig) -> float:
    """Learning rate of an epoch (0-based): linear warm-up from warmup_start_lr to lr over warmup_epochs,
    then x gamma at each milestone."""
    if epoch < config.warmup_epochs:
        return config.warmup_start_lr + (config.lr - config.warmup_start_lr) * epoch / config.warmup_epochs
    return config.lr * config.gamma ** sum(epoch >= m for m in config.milestones)


class TrainStep(nn.Module):
    """Model and loss in one module, so DDP also averages the uncertainty weights' gradients."""

    def __init__(self, model: PortraitNet, criterion: MultiTaskLoss) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion

    def forward(self, images: torch.Tensor, targets: dict[str, torch.Tensor]):
        return self.criterion(self.model(images), targets)


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    history: list[dict]


def _atomic_save(obj, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise UserError(f"cannot load checkpoint {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a Portrait Builder baseline checkpoint")
    return ckpt


def model_from_checkpoint(ckpt: dict) -> tuple[PortraitNet, TrainConfig, list[Task]]:
    config = TrainConfig.from_dict(ckpt["config"])
    tasks = [Task.from_dict(t) for t in ckpt["tasks"]]
    model = PortraitNet(config, tasks)
    model.load_state_dict(ckpt["model"])
    return model, config, tasks


def _dist_setup() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        rank = dist.get_rank()
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            return rank, world, torch.device("cuda", local)
        return rank, world, torch.device("cpu")
    return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train(
    release_dir: str | Path,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    pretrained: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train the baseline on a release's train subset; write ``out_dir/last.pt`` after every epoch.

    resume=True continues from ``out_dir/last.pt`` (its config must equal ``config``).
    Returns the checkpoint path and the per-epoch history (mean loss overall and per task, lr).
    """
    from tqdm import tqdm

    rank, world, dev = _dist_setup()
    if device is not None:
        dev = torch.device(device)
    fit_torch_threads(int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    out = Path(out_dir)
    last = out / LAST
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    if last.exists() and not resume:
        raise UserError(f"{last} exists: pass --resume to continue that run, or choose another --out")

    release = load_release(release_dir, require_manifest=False)
    table = release.subset("train")
    if table.empty:
        raise UserError(f"release {release.root} has no train crops")
    log.info("release %s (%s): %d train crops", release.root, release.version or "unversioned", len(table))
    # which data the weights saw: recorded in every checkpoint (None for an unversioned folder)
    manifest_file = release.root / "manifest.json"
    manifest_sha = hashlib.sha256(manifest_file.read_bytes()).hexdigest() if release.manifest else None
    tasks = build_tasks(release.taxonomy, table["identity"])
    targets = encode_targets(table, tasks)

    torch.manual_seed(config.seed)
    model = PortraitNet(config, tasks)
    if pretrained is not None:
        model.load_pretrained(pretrained)
    criterion = MultiTaskLoss(tasks, config.metric_loss, config.metric_weight, config.weighting, config.triplet_margin)
    step = TrainStep(model, criterion).to(dev)
    decay = [p for n, p in step.named_parameters() if p.requires_grad and not n.startswith("criterion.")]
    no_decay = [p for n, p in step.named_parameters() if p.requires_grad and n.startswith("criterion.")]
    optimizer = torch.optim.Adam(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    use_amp = config.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start_epoch, history = 0, []
    if resume and last.exists():
        ckpt = load_checkpoint(last)
        diff = sorted(k for k, v in config.to_dict().items()
                      if ckpt["config"].get(k) != v and k not in RESUME_MAY_CHANGE)
        if diff:
            raise UserError(f"cannot resume {last}: its config differs in {', '.join(diff)}")
        if [t.to_dict() for t in tasks] != ckpt["tasks"]:
            raise UserError(f"cannot resume {last}: the release's tasks or train identities differ")
        model.load_state_dict(ckpt["model"])
        criterion.load_state_dict(ckpt["criterion"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch = int(ckpt["epoch"])
        history = list(ckpt["history"])
        if ckpt.get("release_manifest_sha256") != manifest_sha:
            # same tasks and identities (checked above), different bytes: say so, the run mixes data
            log.warning("resuming %s on a different release (%s) than it started on (%s)", last,
                        release.version or "unversioned", ckpt.get("release_version") or "unversioned")
        log.info("resuming %s after epoch %d", last, start_epoch)
    if world > 1:
        if dev.type == "cuda":
            step = nn.SyncBatchNorm.convert_sync_batchnorm(step)
        step = nn.parallel.DistributedDataParallel(
            # Every parameter joins each step's graph (absent tasks contribute x 0), so no unused-parameter scan.
            step, device_ids=[dev.index] if dev.type == "cuda" else None, find_unused_parameters=False)

    dataset = CropDataset(release.root, table["file"].tolist(), config.input_size,
                          cache=len(table) <= config.cache_max_crops)
    sampler = create_sampler(config.sampler, identity_array(table), config.batch_size, config.num_instances,
                             config.seed)
    workers = 0 if dataset.cached else loader_workers(config.num_workers)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=dev.type == "cuda",
                        persistent_workers=False)
    augment = TrainAugment(config.input_size, config.pad, config.flip_p, config.erase_p).to(dev)
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else nullcontext()

    for epoch in range(start_epoch, config.epochs):
        # Seeded per epoch: a resumed run draws the same batches and augmentations.
        torch.manual_seed(config.seed * 100003 + epoch)
        sampler.set_epoch(epoch)
        lr = lr_at(epoch, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step.train()
        sums: dict[str, float] = {}
        n_batches = 0
        t0 = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch",
                   disable=not progress or rank != 0, leave=False)
        for batch in bar:
            index = batch["index"][rank::world]
            images = batch["image"][rank::world].to(dev, non_blocking=True)
            y = {name: t[index].to(dev, non_blocking=True) for name, t in targets.items()}
            images = augment(images)
            with autocast:
                total, parts = step(images, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            scaler.step(optimizer)
            scaler.update()
            if not math.isfinite(total.item()):
                raise RuntimeError(f"training diverged: loss {total.item()} at epoch {epoch + 1}")
            sums["loss"] = sums.get("loss", 0.0) + total.item()
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + value.item()
            n_batches += 1
            bar.set_postfix(loss=f"{total.item():.3f}")
        record = {"epoch": epoch + 1, "lr": lr, "batches": n_batches, "seconds": time.perf_counter() - t0}
        record |= {k: v / max(n_batches, 1) for k, v in sums.items()}
        history.append(record)
        log.info("epoch %d: %s", epoch + 1, json.dumps(record))
        if rank == 0:
            ckpt = {
                "format": CHECKPOINT_FORMAT,
                "epoch": epoch + 1,
                "config": config.to_dict(),
                "tasks": [t.to_dict() for t in tasks],
                "split": {name: list(idx) for name, idx in model.split.items()},
                "model": model.state_dict(),
                "criterion": criterion.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": {"epoch": epoch + 1, "lr": lr},
                "scaler": scaler.state_dict() if use_amp else {},
                "history": history,
                "release": str(release.root),
                "release_version": release.version,
                "release_manifest_sha256": manifest_sha,
            }
            _atomic_save(ckpt, last)
            atomic_write_text(out / "history.json", json.dumps(history, indent=1))
        if world > 1:
            dist.barrier()
    return TrainResult(checkpoint=last, history=history)


__all__ = ["TrainResult", "load_checkpoint", "lr_at", "model_from_checkpoint", "train"]
