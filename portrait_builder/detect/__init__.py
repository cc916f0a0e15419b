"""Person detectors behind a registry; all return :class:`Detections`.

``create_detector("film" | "hog" | "onnx" | "jde", weights=..., device=..., **options)`` is the single
factory; "film" (SSDLite persons + CenterFace faces) is the ingest default.
"""

from portrait_builder.detect.base import Detector
from portrait_builder.detect.registry import DETECTORS, create_detector, detector_class, detector_names
from portrait_builder.detect.types import Detections

__all__ = ["DETECTORS", "Detections", "Detector", "create_detector", "detector_class", "detector_names"]
