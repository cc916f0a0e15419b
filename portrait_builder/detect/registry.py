"""Detector backends by name, imported lazily so that ``hog`` never pays for torch or onnxruntime."""

from __future__ import annotations

import importlib
import inspect

from portrait_builder.detect.base import Detector
from portrait_builder.errors import UserError

# name -> "module:Class". Lazy strings: a backend's heavy imports happen only when it is chosen, and a
# backend whose module or weights are missing from this installation fails with a clear line.
DETECTORS: dict[str, str] = {
    "film": "portrait_builder.detect.film:FilmDetector",
    "hog": "portrait_builder.detect.hog:HOGDetector",
    "onnx": "portrait_builder.detect.onnx:ONNXDetector",
    "jde": "portrait_builder.detect.jde.backend:JDEDetector",
}


def detector_names() -> list[str]:
    return sorted(DETECTORS)


def detector_class(name: str) -> type:
    try:
        target = DETECTORS[name]
    except KeyError:
        raise UserError(f"unknown detector {name!r}; valid detectors: {', '.join(detector_names())}") from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise UserError(f"detector {name!r} is not available in this installation ({module_name} is missing)") from None
        raise UserError(f"detector {name!r} needs the package {exc.name!r}, which is not installed") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UserError(f"detector {name!r}: {module_name} has no {attr}") from None


def create_detector(name: str, *, weights: str | None = None, device: str = "auto", **options) -> Detector:
    """Build a detector by registry name. Unknown options are a UserError naming the valid ones."""
    if device not in ("auto", "cpu", "cuda"):
        raise UserError(f"unknown device {device!r}; valid devices: auto, cpu, cuda")
    cls = detector_class(name)
    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            valid = sorted(k for k in params if k not in ("weights", "device", "self"))
            raise UserError(f"detector {name!r} has no option {', '.join(unknown)}; valid options: {', '.join(valid) or 'none'}")
    return cls(weights=weights, device=device, **options)
