"""Training and fine-tuning JDE on MOT-format data in JDE's layout, with the published loss.

Data: ``images/.../NNNNNN.jpg`` beside ``labels_with_ids/.../NNNNNN.txt`` (one ``class identity xc yc w h`` line
per box, coordinates normalised by the image size, identity -1 for none) and a list file of image paths.
Loss per scale: 0.5 * (exp(-s_r) L_box + exp(-s_c) L_conf + exp(-s_id) L_id + s_r + s_c + s_id); anchors
with IoU > 0.5 to a box are foreground, < 0.4 background, ignored between. Checkpoints use the published
layout ``{'epoch', 'model', 'optimizer'}`` (plus ``'arch'`` and ``'embedding_dim'``), loadable with weights_only.
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from portrait_builder.common import atomic_write
from portrait_builder.detect.jde.letterbox import letterbox
from portrait_builder.detect.jde.model import STRIDES, JDENet, build_jde_net, read_state_dict, resolve_arch, split_head
from portrait_builder.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
FG_IOU = 0.5  # anchor is foreground above this IoU with a ground-truth box (published)
BG_IOU = 0.4  # background below; ignored in between


@dataclass(frozen=True)
class TrainConfig:
    """Defaults are the published schedule (SGD 0.01, momentum 0.9, wd 1e-4, 30 epochs, x0.1 at 50% and 75%,
    1000-iteration warm-up), except the batch size, which suits one small GPU or a CPU."""

    size: str = "1088x608"
    epochs: int = 30
    batch_size: int = 8
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of the epochs
    warmup_iters: int = 1000
    optimizer: str = "sgd"  # sgd | adam
    embedding_dim: int | None = None  # None: 512 for the published sizes, 128 for tiny-*
    flip: bool = True
    device: str = "auto"
    seed: int = 0
    workers: int = 0


# ----------------------------------------------------------------------------- data


def label_path_for(image_path: Path) -> Path:
    """JDE's rule: replace the ``images`` directory with ``labels_with_ids`` and the suffix with ``.txt``."""
    parts = list(image_path.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels_with_ids"
            return Path(*parts).with_suffix(".txt")
    raise UserError(f"image path {image_path} has no 'images' directory (JDE layout: .../images/... beside .../labels_with_ids/...)")


def read_image_list(data: str | Path) -> list[Path]:
    """Image paths from a list file (one path a line, relative to the list file's directory or absolute),
    or from a directory: its ``*.train`` / ``*.txt`` list file when there is exactly one, else every image
    under ``DATA/images``."""
    data = Path(data)
    if data.is_file():
        base = data.parent
        paths = [Path(line.strip()) for line in data.read_text().splitlines() if line.strip()]
        return [p if p.is_absolute() else base / p for p in paths]
    if not data.is_dir():
        raise UserError(f"training data not found: {data}")
    lists = sorted(data.glob("*.train")) or sorted(data.glob("*.txt"))
    if len(lists) == 1:
        return read_image_list(lists[0])
    images = sorted(p for p in (data / "images").rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise UserError(f"{data}: no list file and no images under {data / 'images'} (expected JDE's layout)")
    return images


def read_labels(path: Path) -> np.ndarray:
    """(K, 6) float32 rows ``class identity xc yc w h`` (normalised); an absent file means no boxes."""
    if not path.is_file():
        return np.zeros((0, 6), np.float32)
    try:
        arr = np.loadtxt(path, dtype=np.float32, ndmin=2)
    except ValueError as exc:
        raise UserError(f"bad label file {path}: {exc}") from None
    if arr.size == 0:
        return np.zeros((0, 6), np.float32)
    if arr.shape[1] != 6:
        raise UserError(f"bad label file {path}: expected 6 columns 'class identity xc yc w h', got {arr.shape[1]}")
    return arr


class JDEDataset(torch.utils.data.Dataset):
    """Letterboxed images with targets ``(K, 6)``: identity, xc, yc, w, h in input pixels (and class)."""

    def __init__(self, images: list[Path], width: int, height: int, flip: bool = True):
        self.images = images
        self.width, self.height = width, height
        self.flip = flip
        self.labels = [read_labels(label_path_for(p)) for p in images]
        ids = np.concatenate([lab[:, 1] for lab in self.labels]) if self.labels else np.zeros(0)
        self.nID = int(ids.max()) + 1 if len(ids) and ids.max() >= 0 else 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        path = self.images[index]
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise UserError(f"cannot read image {path}")
        h0, w0 = img.shape[:2]
        chw, info = letterbox(img, self.width, self.height)
        lab = self.labels[index].copy()
        # normalised (source) -> input pixels: scale by the source size and the gain, shift by the padding
        pad_x, pad_y = info.pad
        t = np.zeros((len(lab), 5), np.float32)
        t[:, 0] = lab[:, 1]
        t[:, 1] = lab[:, 2] * w0 * info.gain + pad_x
        t[:, 2] = lab[:, 3] * h0 * info.gain + pad_y
        t[:, 3] = lab[:, 4] * w0 * info.gain
        t[:, 4] = lab[:, 5] * h0 * info.gain
        if self.flip and random.random() < 0.5:
            chw = np.ascontiguousarray(chw[:, :, ::-1])
            t[:, 1] = self.width - t[:, 1]
        return torch.from_numpy(chw), torch.from_numpy(t)


def collate(batch):
    images = torch.stack([b[0] for b in batch])
    targets = [b[1] for b in batch]
    return images, targets


# ----------------------------------------------------------------------------- targets and loss


def _iou_cxcywh(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) IoU between centre-format boxes."""
    a1, a2 = a[:, None, :2] - a[:, None, 2:] / 2, a[:, None, :2] + a[:, None, 2:] / 2
    b1, b2 = b[None, :, :2] - b[None, :, 2:] / 2, b[None, :, :2] + b[None, :, 2:] / 2
    inter = (torch.min(a2, b2) - torch.max(a1, b1)).clamp(min=0).prod(-1)
    union = a[:, None, 2:].prod(-1) + b[None, :, 2:].prod(-1) - inter
    return inter / union.clamp(min=1e-9)


def build_targets(targets: list[torch.Tensor], anchors: torch.Tensor, stride: int, grid_h: int, grid_w: int):
    """Anchor assignment of one scale.

    targets: per image (K, 5) ``identity, xc, yc, w, h`` in input pixels; anchors (A, 2) in input pixels.
    Returns tconf (B, A, H, W) int64 in {1 fg, 0 bg, -1 ignore}, tbox (B, A, H, W, 4) JDE deltas
    ``((gx - i*stride)/aw, (gy - j*stride)/ah, log(gw/aw), log(gh/ah))`` and tid (B, A, H, W) int64 (-1 none).
    Anchor boxes sit at the cell corners (i*stride, j*stride), as the published decoder places them.
    """
    device = anchors.device
    a = len(anchors)
    bsz = len(targets)
    jj, ii = torch.meshgrid(torch.arange(grid_h, device=device), torch.arange(grid_w, device=device), indexing="ij")
    centres = torch.stack([ii, jj], -1).float() * stride  # (H, W, 2)
    anchor_boxes = torch.cat(
        [centres[None].expand(a, grid_h, grid_w, 2), anchors[:, None, None, :].expand(a, grid_h, grid_w, 2)], -1
    ).reshape(-1, 4)
    tconf = torch.zeros(bsz, a * grid_h * grid_w, dtype=torch.long, device=device)
    tbox = torch.zeros(bsz, a * grid_h * grid_w, 4, device=device)
    tid = torch.full((bsz, a * grid_h * grid_w), -1, dtype=torch.long, device=device)
    for b, t in enumerate(targets):
        t = t.to(device)
        t = t[(t[:, 3] > 0) & (t[:, 4] > 0)]
        if len(t) == 0:
            continue
        iou = _iou_cxcywh(anchor_boxes, t[:, 1:5])  # (AHW, K)
        best, gi = iou.max(1)
        fg = best > FG_IOU
        tconf[b, (best >= BG_IOU) & ~fg] = -1
        tconf[b, fg] = 1
        g = t[gi[fg]]
        ab = anchor_boxes[fg]
        tbox[b, fg] = torch.stack(
            [(g[:, 1] - ab[:, 0]) / ab[:, 2], (g[:, 2] - ab[:, 1]) / ab[:, 3], torch.log(g[:, 3] / ab[:, 2]), torch.log(g[:, 4] / ab[:, 3])], 1
        )
        tid[b, fg] = g[:, 0].long()
    shape = (bsz, a, grid_h, grid_w)
    return tconf.view(shape), tbox.view(*shape, 4), tid.view(shape)


def jde_loss(model: JDENet, heads: list[torch.Tensor], targets: list[torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """The published uncertainty-weighted loss summed over the three scales, and its parts (floats)."""
    total = heads[0].new_zeros(())
    parts = {"box": 0.0, "conf": 0.0, "id": 0.0}
    for k, (head, stride) in enumerate(zip(heads, STRIDES, strict=True)):
        yolo = model.module_list[model.yolo_indices[k]][0]
        deltas, conf, emb = split_head(head.float(), len(model.arch.anchors[k]))
        tconf, tbox, tid = build_targets(targets, model._anchors[k], stride, head.shape[2], head.shape[3])
        fg = tconf == 1
        l_box = F.smooth_l1_loss(deltas[fg], tbox[fg]) if fg.any() else head.new_zeros(())
        l_conf = F.cross_entropy(conf.reshape(-1, 2), tconf.reshape(-1), ignore_index=-1) if (tconf >= 0).any() else head.new_zeros(())
        loss = torch.exp(-yolo.s_r) * l_box + torch.exp(-yolo.s_c) * l_conf + yolo.s_r + yolo.s_c
        # identity: one embedding per cell with a foreground anchor (all anchors of a cell share it)
        cell_id = tid.max(1).values  # (B, H, W)
        id_mask = cell_id >= 0
        if model.classifier is not None and id_mask.any():
            e = model.emb_scale * F.normalize(emb[id_mask], dim=-1)
            l_id = F.cross_entropy(model.classifier(e), cell_id[id_mask])
            loss = loss + torch.exp(-yolo.s_id) * l_id + yolo.s_id
            parts["id"] += float(l_id.detach())
        total = total + 0.5 * loss.sum()
        parts["box"] += float(l_box.detach())
        parts["conf"] += float(l_conf.detach())
    return total, parts


# ----------------------------------------------------------------------------- training loop



def _init_from(model: JDENet, weights: str | Path) -> None:
    """Fine-tuning: load every tensor but the classifier (its size depends on the dataset's identities)."""
    from portrait_builder.detect.jde.model import _describe_mismatch

    sd, _ = read_state_dict(weights)
    sd = {k: v for k, v in sd.items() if not k.startswith("classifier.")}
    target = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    probe = type("P", (), {"state_dict": lambda self: target})()
    problem = _describe_mismatch(probe, sd)
    if problem:
        raise UserError(f"--weights {weights} does not fit the JDE {model.arch.size} network: {problem}")
    model.load_state_dict(sd, strict=False)


def lr_at(cfg: TrainConfig, epoch: int, it: int) -> float:
    """Step schedule with the published burn-in (lr * (it / warmup)^4 over the first iterations)."""
    lr = cfg.lr * (0.1 ** sum(epoch >= math.ceil(m * cfg.epochs) for m in cfg.milestones))
    if cfg.warmup_iters and it < cfg.warmup_iters:
        lr *= (it / cfg.warmup_iters) ** 4
    return lr


def train(data: str | Path, out: str | Path, cfg: TrainConfig, init_weights: str | Path | None = None,
          resume: bool = False) -> Path:
    """Train on ``data`` and write ``out/last.pt`` after every epoch; returns its path.

    ``resume``: continue from ``out/last.pt`` (model, optimizer, epoch) when it exists.
    """
    from portrait_builder.detect.jde.backend import resolve_device

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = resolve_device(cfg.device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images = read_image_list(data)
    if not images:
        raise UserError(f"{data}: the list of training images is empty")
    arch = resolve_arch(cfg.size, cfg.embedding_dim)
    dataset = JDEDataset(images, arch.width, arch.height, flip=cfg.flip)
    model = build_jde_net(cfg.size, nID=dataset.nID or None, embedding_dim=cfg.embedding_dim).to(device)
    if init_weights:
        _init_from(model, init_weights)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        raise UserError(f"unknown optimizer {cfg.optimizer!r}; valid: sgd, adam")
    last = out / "last.pt"
    start_epoch = 0
    if resume and last.is_file():
        ckpt = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start_epoch = int(ckpt["epoch"]) + 1
        log.info("resuming %s at epoch %d", last, start_epoch)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch_size, shuffle=True, collate_fn=collate, num_workers=cfg.workers, drop_last=len(dataset) > cfg.batch_size
    )
    it = start_epoch * len(loader)
    history = []
    if start_epoch and (out / "history.json").is_file():
        history = [h for h in json.loads((out / "history.json").read_text()) if h["epoch"] < start_epoch]
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=None)
        sums = {"loss": 0.0, "box": 0.0, "conf": 0.0, "id": 0.0}
        for x, targets in bar:
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, epoch, it)
            heads = model(x.to(device))
            loss, parts = jde_loss(model, heads, targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            it += 1
            sums["loss"] += float(loss.detach())
            for k, v in parts.items():
                sums[k] += v
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        means = {k: v / max(len(loader), 1) for k, v in sums.items()}
        history.append({"epoch": epoch, **means})
        log.info("epoch %d: %s", epoch, means)
        state = {"epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(), "arch": cfg.size,
                 "embedding_dim": model.embedding_dim, "nID": dataset.nID}
        atomic_write(last, lambda tmp, state=state: torch.save(state, tmp))  # never a half-written checkpoint
        (out / "history.json").write_text(json.dumps(history, indent=1))
    return last
