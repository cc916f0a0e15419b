"""The detector protocol every backend implements (hog, onnx, jde, ...)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from portrait_builder.detect.types import Detections


@runtime_checkable
class Detector(Protocol):
    """A person detector with an appearance embedding.

    Constructed by :func:`portrait_builder.detect.create_detector` with keyword arguments
    ``weights: str | None``, ``device: str`` ("auto" | "cpu" | "cuda") plus backend-specific options.

    name: registry name ("film", "hog", "onnx", "jde").
    embedding_dim: D of ``Detections.embeddings``.
    fingerprint: sha256 hex of the weights file, or of the parameters for weight-free backends; stored
        with each video so a store records which model produced its crops.
    batch_size: how many frames :meth:`detect` takes at once to best use the device.
    """

    name: str
    embedding_dim: int
    fingerprint: str
    batch_size: int

    def detect(self, frames: list[np.ndarray]) -> list[Detections]:
        """One Detections per frame: frames are (H, W, 3) uint8 BGR; boxes are xyxy in source pixels,
        scores in [0, 1], embeddings (N, embedding_dim) L2-normalised."""
        ...
