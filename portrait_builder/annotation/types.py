"""The plain data the annotation service hands out: frozen dataclasses, never sessions or ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from portrait_builder.errors import UserError

GENDER = "gender"  # set together with identity (the paper: gender is a property of an identity)
REVIEW_ROLES = ("reviewer", "maintainer")


class AnnotationPermissionError(UserError):
    """The annotator's role or assigned attribute does not allow this write."""


@dataclass(frozen=True)
class AnnotatorInfo:
    id: int
    name: str
    role: str
    attribute: str | None
    db_login: str | None = None  # the person's PostgreSQL login (team stores)
    disabled: bool = False


@dataclass(frozen=True)
class CropItem:
    """One crop as the app shows it. ``labels`` maps attribute -> decoded current value."""

    id: int
    video_id: int
    track_id: int
    frame_index: int
    path: str  # relative to the crop root
    image_path: Path
    labels: dict = field(default_factory=dict)


@dataclass(frozen=True)
class IdentityInfo:
    id: int
    video_id: int
    name: str | None
    gender: str | None
    exemplar_crop_id: int | None


@dataclass(frozen=True)
class Exemplar:
    """One character of a movie as the identity grid shows it."""

    identity_id: int
    name: str | None
    gender: str | None
    crop_count: int
    exemplar_crop_id: int | None
    image_path: Path | None
    similarity: float | None  # cosine similarity to the current crop; None without embeddings


@dataclass(frozen=True)
class TrackCrop:
    """One crop of the current crop's track as the identity view's strip shows it.

    ``labelled``: the crop already has a current identity label. The strip shows it (the annotator
    keeps the whole track in view) but leaves it out of whole-track labelling unless ticked on purpose.
    """

    id: int
    frame_index: int
    image_path: Path
    identity: str | None  # current identity value (stored text) or None; hidden (None) for a second opinion
    labelled: bool = False
    label: str | None = None  # the current identity for people ("Hero", "ID 7", "Unknown person"); None as identity


@dataclass(frozen=True)
class Progress:
    attribute: str
    done: int
    remaining: int
    total: int
    labels_last_hour: int
    labels_per_hour: float


@dataclass(frozen=True)
class ActionLabel:
    crop_id: int
    attribute: str
    value: str | None  # stored text
    label_id: int


@dataclass(frozen=True)
class Action:
    """One click: the labels it wrote (several crops and/or identity+gender)."""

    source: str
    labels: tuple[ActionLabel, ...]

    @property
    def crop_ids(self) -> list[int]:
        return list(dict.fromkeys(lab.crop_id for lab in self.labels))


@dataclass(frozen=True)
class ReviewRow:
    crop_id: int
    video_id: int
    attribute: str
    value: str | list[str] | None
    annotator: str | None
    label_id: int
    image_path: Path
    provenance: str | None = None  # how the label came about (clicked, accepted, propagated, ...)


@dataclass(frozen=True)
class HistoryRow:
    """One label of a crop's history, as review shows it (oldest first)."""

    label_id: int
    attribute: str
    value: str | list[str] | None
    annotator: str | None
    source: str
    provenance: str | None
    created_at: float


@dataclass(frozen=True)
class KappaResult:
    attribute: str
    annotator_a: str
    annotator_b: str
    n: int
    kappa: float

