"""What every part of the annotation service shares: the annotator's state and rights, and small helpers.

:class:`~portrait_builder.annotation.service.AnnotationService` sets the state in its constructor; the
parts (queue, history, characters, review) are mixins over this base, each in its own module.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from portrait_builder.annotation.types import GENDER, REVIEW_ROLES, Action, AnnotationPermissionError, AnnotatorInfo
from portrait_builder.errors import UserError
from portrait_builder.store.project import Project
from portrait_builder.taxonomy import Taxonomy

CALLER_SOURCES = ("app", "synthetic")  # what set_label & co. accept; review/undo/redo are set here


class ServiceBase:
    """One annotator on one attribute queue: the state the parts share, the rights, the helpers."""

    project: Project
    taxonomy: Taxonomy
    annotator: AnnotatorInfo
    attribute: str
    identity_attribute: str | None
    second_opinion: bool
    lease_seconds: float
    batch: int
    _queue: deque[int]  # claimed crop ids, next first
    _paths: dict[int, str]  # relative image path of each claimed crop, for prefetching
    _cursor: int  # claims continue after the last claimed crop id, so they never rescan labelled rows
    _last_renew: float
    _last_stamp: float
    # Per movie: (read at, identity rows, exemplar embeddings); see CharactersMixin.
    _characters: dict[int, tuple[float, list, dict[int, np.ndarray | None]]]
    _done: list[Action]
    _redo: list[tuple[Action, Action]]  # (original action, the undo that reverted it)

    # -- rights --------------------------------------------------------------------------------
    @property
    def is_reviewer(self) -> bool:
        return self.annotator.role in REVIEW_ROLES

    @property
    def writable_attributes(self) -> frozenset[str]:
        if self.annotator.role in REVIEW_ROLES:
            return frozenset(self.taxonomy.names)
        own = self.annotator.attribute
        if own is None:
            return frozenset()
        if self.taxonomy.attribute(own).kind == "identity" and GENDER in self.taxonomy.names:
            return frozenset({own, GENDER})
        return frozenset({own})

    def _check_write(self, attributes: Iterable[str]) -> None:
        for attr in attributes:
            self.taxonomy.attribute(attr)
            if attr not in self.writable_attributes:
                raise AnnotationPermissionError(
                    f"{self.annotator.name} ({self.annotator.role}, assigned {self.annotator.attribute!r}) "
                    f"may not write {attr!r}"
                )

    def _check_review(self) -> None:
        if not self.is_reviewer:
            raise AnnotationPermissionError(
                f"{self.annotator.name} is an {self.annotator.role}; review needs a reviewer or maintainer"
            )

    @staticmethod
    def _check_source(source: str) -> None:
        if source not in CALLER_SOURCES:
            raise ValueError(f"source must be one of {', '.join(CALLER_SOURCES)}, not {source!r}")

    # -- helpers -------------------------------------------------------------------------------
    def _stamp(self) -> float:
        # One timestamp per click groups its labels into one undoable action; strictly increasing.
        stamp = max(time.time(), self._last_stamp + 1e-6)
        self._last_stamp = stamp
        return stamp

    def _image_path(self, rel: str) -> Path:
        return self.project.crop_root / rel

    def _decode(self, attribute: str, text: str | None):
        return self.taxonomy.decode(attribute, text)

    def _identity_attr(self) -> str:
        if self.identity_attribute is None:
            raise UserError(f"taxonomy {self.taxonomy.name} has no identity attribute")
        return self.identity_attribute

    @staticmethod
    def _ids(crop_ids: int | Iterable[int]) -> list[int]:
        ids = [int(crop_ids)] if isinstance(crop_ids, (int, np.integer)) else [int(c) for c in crop_ids]
        if not ids:
            raise UserError("no crops given")
        return list(dict.fromkeys(ids))
