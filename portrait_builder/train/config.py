"""The baseline's training configuration: one frozen dataclass, read from a YAML pipeline file at the edge."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from portrait_builder.common import config_from_mapping
from portrait_builder.errors import UserError

ARCHITECTURES = ("single_task", "shared", "fss")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. Defaults are the paper's (Table 4 best row, FSS+BR+Uncer.)."""

    name: str = "fss_br_uncer"
    # Model
    backbone: str = "hrnet_w32"
    architecture: str = "fss"  # single_task: one backbone per task; shared: Sim-MTL; fss: feature space split
    appearance_attr_fraction: float = 0.5  # of the appearance slice, given to gender/age/physique/height
    posture_shared_fraction: float = 0.5  # of the posture slice, shared by body and arm posture
    # Losses
    metric_loss: str = "batch_rank"  # none | triplet | batch_rank
    metric_weight: float = 0.5
    triplet_margin: float = 0.3
    weighting: str = "uncertainty"  # average | uncertainty
    # Data
    sampler: str = "random"  # random | pk | shuffle
    num_instances: int = 4  # K of P-K sampling
    batch_size: int = 128
    input_size: tuple[int, int] = (256, 128)  # height, width
    pad: int = 10  # random crop with this much padding
    flip_p: float = 0.5
    erase_p: float = 0.5
    num_workers: int = 4
    cache_max_crops: int = 5000  # decode the train crops once and keep them in memory up to this many
    # Schedule (Adam, linear warm-up, step decay)
    epochs: int = 100
    lr: float = 3.5e-4
    warmup_epochs: int = 10
    warmup_start_lr: float = 3.5e-5
    milestones: tuple[int, ...] = (30, 60, 90)
    gamma: float = 0.1
    weight_decay: float = 5e-4
    amp: bool = True  # used on CUDA only
    seed: int = 0
    # Evaluation
    eval_metric: str = "cosine"  # distance between BNNeck re-id features: cosine | euclidean
    eval_batch_size: int = 128

    def __post_init__(self) -> None:
        from portrait_builder.train.losses import METRIC_LOSSES, WEIGHTINGS
        from portrait_builder.train.samplers import SAMPLERS

        checks = {
            "architecture": (self.architecture, ARCHITECTURES),
            "metric_loss": (self.metric_loss, tuple(METRIC_LOSSES)),
            "weighting": (self.weighting, WEIGHTINGS),
            "sampler": (self.sampler, tuple(SAMPLERS)),
            "eval_metric": (self.eval_metric, ("cosine", "euclidean")),
        }
        for key, (value, valid) in checks.items():
            if value not in valid:
                raise UserError(f"config {key}: unknown value {value!r}; valid: {', '.join(valid)}")
        if self.batch_size < 2 or self.epochs < 1:
            raise UserError("config: batch_size must be >= 2 and epochs >= 1")
        if self.sampler != "random" and self.batch_size % self.num_instances:
            raise UserError(f"config: batch_size {self.batch_size} is not a multiple of num_instances {self.num_instances}")

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists, not tuples), so a checkpoint loads with weights_only=True."""
        out = dataclasses.asdict(self)
        out["input_size"] = list(self.input_size)
        out["milestones"] = list(self.milestones)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        kwargs = dict(data)
        if "input_size" in kwargs:
            kwargs["input_size"] = tuple(int(v) for v in kwargs["input_size"])
        if "milestones" in kwargs:
            kwargs["milestones"] = tuple(int(v) for v in kwargs["milestones"] or ())
        return config_from_mapping(cls, kwargs, "config")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def resolve_config_path(spec: str | Path) -> Path:
    """A YAML path, or a bare variant name (``fss_br``) looked up in the shipped ``pipelines/``."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.suffix == "" and path.parent == Path("."):
        from portrait_builder.resources import pipelines_dir

        candidate = pipelines_dir() / f"{path.name}.yaml"
        if candidate.is_file():
            return candidate
        names = sorted(p.stem for p in pipelines_dir().glob("*.yaml") if p.stem != "ingest")
        raise UserError(f"unknown baseline variant {str(spec)!r}; valid variants: {', '.join(names)}")
    raise UserError(f"config file not found: {spec}")


def load_config(spec: str | Path, **overrides: Any) -> TrainConfig:
    """Read a baseline pipeline YAML (path or variant name); ``overrides`` win over the file."""
    path = resolve_config_path(spec)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of settings")
    data.setdefault("name", path.stem)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(data)
