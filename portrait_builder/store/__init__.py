"""The project store: SQLAlchemy models, sessions, migrations. The only place in the library with SQL."""

from portrait_builder.store.engine import make_engine, retry
from portrait_builder.store.labels import add_label, current_labels, label_history
from portrait_builder.store.models import (
    Annotator,
    Base,
    Candidate,
    ChangePoint,
    Crop,
    CurrentLabel,
    Identity,
    Label,
    Lease,
    Prediction,
    Release,
    Setting,
    SplitAssignment,
    StoreCount,
    Track,
    Video,
)
from portrait_builder.store.project import Project

__all__ = [
    "Annotator",
    "Base",
    "Candidate",
    "ChangePoint",
    "Crop",
    "CurrentLabel",
    "Identity",
    "Label",
    "Lease",
    "Prediction",
    "Project",
    "Release",
    "Setting",
    "SplitAssignment",
    "StoreCount",
    "Track",
    "Video",
    "add_label",
    "current_labels",
    "label_history",
    "make_engine",
    "retry",
]
