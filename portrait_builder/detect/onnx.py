"""A user-supplied ONNX person detector run through onnxruntime.

Expected model layout (also in docs/ingest.md):
- input 0: float32 ``(B, 3, H, W)``, RGB, values in [0, 1]. H and W come from the model when fixed,
  else from ``input_size=(H, W)``. Frames are letterboxed: resized keeping aspect ratio, padded
  right/bottom with grey 114/255.
- output 0: float32 ``(B, N, 5)`` or ``(B, N, 6)``: rows ``x1, y1, x2, y2, score[, class_id]`` in the
  model input's pixels (after letterbox). Rows with score < ``score_threshold`` are padding/background;
  with a class column only ``person_class`` is kept.
- output 1 (optional): float32 ``(B, N, D)`` appearance embeddings, one per row of output 0. Without
  it the colour-stripe embedding of the hog backend is computed on the boxes.
Boxes are mapped back to source pixels (undo the letterbox), clipped, and non-maximum suppressed
(torchvision.ops.nms, ``nms_iou``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from portrait_builder.common import file_digest
from portrait_builder.detect.embed import EMBEDDING_DIM, stripe_embeddings
from portrait_builder.detect.types import Detections
from portrait_builder.errors import UserError

LETTERBOX_FILL = 114


def letterbox(frame: np.ndarray, size_hw: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Resize keeping aspect ratio into ``size_hw`` (pad right/bottom); returns (image, scale)."""
    h, w = frame.shape[:2]
    th, tw = size_hw
    s = min(th / h, tw / w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    out = np.full((th, tw, 3), LETTERBOX_FILL, np.uint8)
    out[:nh, :nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, s


class ONNXDetector:
    name = "onnx"

    def __init__(
        self,
        *,
        weights: str | None = None,
        device: str = "auto",
        input_size: tuple[int, int] = (384, 640),
        score_threshold: float = 0.3,
        nms_iou: float = 0.5,
        person_class: int = 0,
        batch_size: int = 4,
    ):
        if not weights:
            raise UserError("the onnx detector needs --weights MODEL.onnx (a person detector; see docs/ingest.md for the layout)")
        path = Path(weights)
        if not path.is_file():
            raise UserError(f"ONNX model not found: {path}")
        import onnxruntime as ort

        available = ort.get_available_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in available:
            raise UserError("device cuda asked for, but this onnxruntime has no CUDAExecutionProvider")
        providers = ["CPUExecutionProvider"]
        if device in ("auto", "cuda") and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self._session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:
            raise UserError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0]}") from None
        inp = self._session.get_inputs()[0]
        if len(inp.shape) != 4:
            raise UserError(f"ONNX model {path}: input must be (B, 3, H, W), got {inp.shape}")
        self._input_name = inp.name
        fixed_h, fixed_w = inp.shape[2], inp.shape[3]
        self.input_hw = (
            int(fixed_h) if isinstance(fixed_h, int) else int(input_size[0]),
            int(fixed_w) if isinstance(fixed_w, int) else int(input_size[1]),
        )
        self._fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        outputs = self._session.get_outputs()
        self._has_embeddings = len(outputs) > 1
        emb_dim = outputs[1].shape[-1] if self._has_embeddings else EMBEDDING_DIM
        if self._has_embeddings and not isinstance(emb_dim, int):
            raise UserError(f"ONNX model {path}: embedding output needs a fixed last dimension, got {outputs[1].shape}")
        self.embedding_dim = int(emb_dim)
        self.score_threshold, self.nms_iou, self.person_class = float(score_threshold), float(nms_iou), int(person_class)
        self.batch_size = int(self._fixed_batch or batch_size)
        self.device = "cuda" if providers[0].startswith("CUDA") else "cpu"
        self.fingerprint = file_digest(path)

    def detect(self, frames: list[np.ndarray]) -> list[Detections]:
        results: list[Detections] = []
        for start in range(0, len(frames), self.batch_size):
            results.extend(self._detect_batch(frames[start : start + self.batch_size]))
        return results

    def _detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        boxed = [letterbox(f, self.input_hw) for f in frames]
        batch = np.stack([b[0][:, :, ::-1] for b in boxed]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        n_real = len(frames)
        if self._fixed_batch and n_real < self._fixed_batch:  # pad a fixed-batch model's last call
            batch = np.concatenate([batch, np.zeros((self._fixed_batch - n_real, *batch.shape[1:]), np.float32)])
        outs = self._session.run(None, {self._input_name: batch})
        rows = np.asarray(outs[0], np.float32)
        if rows.ndim != 3 or rows.shape[2] < 5:
            raise UserError(f"ONNX model output 0 must be (B, N, 5|6), got {rows.shape}")
        embs = np.asarray(outs[1], np.float32) if self._has_embeddings else None
        results = []
        for i, (frame, (_, s)) in enumerate(zip(frames, boxed, strict=True)):
            r = rows[i]
            keep = r[:, 4] >= self.score_threshold
            if r.shape[1] >= 6:
                keep &= np.round(r[:, 5]).astype(int) == self.person_class
            r = r[keep]
            boxes = r[:, :4] / s  # undo the letterbox (padding is right/bottom, so no offset)
            h, w = frame.shape[:2]
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
            valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            boxes, scores = boxes[valid], r[valid, 4]
            idx = _nms(boxes, scores, self.nms_iou)
            boxes, scores = boxes[idx], scores[idx]
            if embs is not None:
                e = embs[i][keep][valid][idx]
                e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
            else:
                e = stripe_embeddings(frame, boxes)
            results.append(Detections(boxes, np.clip(scores, 0, 1), e))
        return results


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    import torch
    from torchvision.ops import nms

    return nms(torch.from_numpy(np.ascontiguousarray(boxes)), torch.from_numpy(np.ascontiguousarray(scores)), iou).numpy()
