"""The ``jde`` detector backend: batched JDE inference returning :class:`Detections` with embeddings.

Frames are letterboxed as published, run through the network in batches, filtered by score, reduced by
NMS (``torchvision.ops.nms``, one class, over all scales) and mapped back to source-frame pixels.
On CUDA the network runs under fp16 autocast in channels_last; on the CPU in fp32.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import nms

from portrait_builder.common import file_digest
from portrait_builder.detect.jde.letterbox import letterbox, unletterbox_boxes
from portrait_builder.detect.jde.model import STRIDES, JDENet, decode_confident, load_jde_checkpoint
from portrait_builder.detect.types import Detections
from portrait_builder.errors import UserError

log = logging.getLogger(__name__)

#: What a CPU (fp32) and a CUDA (fp16 autocast) run of the same weights may differ by (tested when CUDA exists):
#: box corners within 1.5 px + 1% of the box size, scores within 0.02, embedding cosine above 0.99.
CPU_GPU_BOX_ATOL_PX = 1.5
CPU_GPU_SCORE_ATOL = 0.02
CPU_GPU_EMB_COS_MIN = 0.99



def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"unknown device {device!r}; valid: auto, cpu, cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("device 'cuda' requested but CUDA is not available on this machine (use --device cpu or auto)")
    return torch.device(device)


class JDEDetector:
    """JDE person detector + 512-d (or the variant's) appearance embedding.

    weights: path to a checkpoint (published ``{'epoch', 'model', 'optimizer'}`` or a bare state dict).
    size: ``1088x608`` | ``864x480`` | ``576x320`` | ``tiny-WxH``; ``None`` (default) takes the ``'arch'`` our
    trainer stores in its checkpoints, else ``1088x608`` (published files carry no size; pass it for 864x480/576x320).
    """

    name = "jde"

    def __init__(
        self,
        weights: str | Path | None = None,
        device: str = "auto",
        size: str | None = None,
        conf_thres: float = 0.5,
        nms_thres: float = 0.4,
        batch_size: int = 8,
        fp16: bool | None = None,
    ):
        if not weights:
            raise UserError("the jde detector needs --weights PATH (a JDE checkpoint such as jde.1088x608.uncertainty.pt)")
        if not 0 < conf_thres < 1 or not 0 < nms_thres <= 1:
            raise UserError(f"jde: conf_thres and nms_thres must be in (0, 1), got {conf_thres}, {nms_thres}")
        if batch_size < 1:
            raise UserError(f"jde: batch_size must be >= 1, got {batch_size}")
        self.weights = Path(weights)
        self.device = resolve_device(device)
        self.model: JDENet = load_jde_checkpoint(self.weights, size).eval().to(self.device)
        self.size = self.model.arch.name
        self.width, self.height = self.model.arch.width, self.model.arch.height
        self.conf_thres = float(conf_thres)
        self.nms_thres = float(nms_thres)
        self.batch_size = int(batch_size)
        self.fp16 = (self.device.type == "cuda") if fp16 is None else bool(fp16)
        if self.fp16 and self.device.type != "cuda":
            raise UserError("jde: fp16 needs CUDA; on the CPU the network runs in fp32")
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.embedding_dim = self.model.embedding_dim
        self.fingerprint = file_digest(self.weights)  # which weights made the crops
        log.info("jde %s on %s (fp16=%s), weights %s", size, self.device, self.fp16, self.weights)

    @property
    def params(self) -> dict:
        """The settings that change the output (for the project's video record)."""
        return {"size": self.size, "conf_thres": self.conf_thres, "nms_thres": self.nms_thres, "fp16": self.fp16}

    @torch.inference_mode()
    def detect(self, frames: list[np.ndarray]) -> list[Detections]:
        """One :class:`Detections` per BGR uint8 frame (boxes in that frame's pixels, embeddings L2-normalised)."""
        out: list[Detections] = []
        for start in range(0, len(frames), self.batch_size):
            out.extend(self._detect_batch(frames[start : start + self.batch_size]))
        return out

    def _detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        if not frames:
            return []
        inputs, infos = [], []
        for frame in frames:
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"jde.detect expects BGR uint8 (H, W, 3) frames, got {frame.dtype} {frame.shape}")
            chw, info = letterbox(frame, self.width, self.height)
            inputs.append(chw)
            infos.append(info)
        x = torch.from_numpy(np.stack(inputs)).to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.fp16):
                heads = self.model.forward_heads(x)
        else:
            heads = self.model.forward_heads(x)
        per_image = decode_confident(heads, self.model._anchors, self.conf_thres, STRIDES)
        results = []
        for (cxcywh, scores, emb), info in zip(per_image, infos, strict=True):
            xyxy = torch.cat([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], 1)
            keep = nms(xyxy, scores, self.nms_thres)  # sorted by decreasing score
            boxes = unletterbox_boxes(xyxy[keep].cpu().numpy(), info)
            # a box wholly in the padding collapses to zero area once clamped to the frame: drop it
            ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            results.append(Detections(boxes[ok], scores[keep].cpu().numpy()[ok], emb[keep].cpu().numpy()[ok]))
        return results
