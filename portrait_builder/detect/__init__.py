"""Person detectors behind a registry; all return :class:`Detections`."""

from portrait_builder.detect.types import Detections

__all__ = ["Detections"]
