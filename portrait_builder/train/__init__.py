"""The multi-task Portrait Interpretation baseline: model, losses, samplers, training and evaluation.

Public API: :class:`TrainConfig`, :func:`load_config`, :func:`train`, :func:`evaluate`.
Heavy modules (torch, timm, kornia) load on first use of these names.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainConfig", "evaluate", "format_row", "load_config", "train"]


def __getattr__(name: str) -> Any:
    if name in ("TrainConfig", "load_config"):
        from portrait_builder.train import config

        return getattr(config, name)
    if name == "train":
        from portrait_builder.train.engine import train

        return train
    if name in ("evaluate", "format_row"):
        from portrait_builder.train import evaluation

        return getattr(evaluation, name)
    raise AttributeError(name)
