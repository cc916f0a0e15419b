"""Pre-labels to confirm: a baseline's predictions (``portrait prelabel``) become labels only by a person's
action, with provenance ``accepted``.

Two ways: the attribute view shows the crop's prediction selected and one key accepts it (for the crop
and, like any value key there, the rest of its track segment); the grid view shows a page of unlabelled
crops sharing one predicted value, the annotator deselects the wrong ones and one key accepts the rest.
The reads are :mod:`portrait_builder.store.predictions`'s; this part adds the writes and their checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from portrait_builder.annotation.character_attributes import current_with_provenance
from portrait_builder.annotation.history import HistoryMixin
from portrait_builder.annotation.tracks import forget_labelled, label_segment
from portrait_builder.annotation.types import Action
from portrait_builder.errors import UserError
from portrait_builder.store.labels import LabelRecord, add_labels
from portrait_builder.store.predictions import GRID_PAGE, ValueCount, grid_page, predicted_values, predictions_for
from portrait_builder.taxonomy import Taxonomy


@dataclass(frozen=True)
class GridItem:
    """A thumbnail of the grid view."""

    crop_id: int
    image_path: Path
    video_id: int
    track_id: int
    frame_index: int
    confidence: float


@dataclass(frozen=True)
class Grid:
    """One page of unlabelled crops predicted ``value`` (stored text) for ``attribute``, most confident first.

    ``next_after``: pass it as ``after`` for the next page (None on the last page); ``total``: crops
    with this prediction still unlabelled, every page together.
    """

    attribute: str
    value: str
    items: tuple[GridItem, ...]
    total: int | None
    next_after: tuple[float, int] | None


def accept_grid(
    s: Session, taxonomy: Taxonomy, crop_ids: Iterable[int], attribute: str, value, *, annotator_id: int | None,
    stamp: float, source: str = "app",
) -> list[LabelRecord]:
    """Label each crop whose stored prediction of ``attribute`` is ``value`` and that is still unlabelled
    (provenance ``accepted``). Crops labelled since the grid was read, or predicted otherwise, are skipped."""
    text = taxonomy.encode(attribute, value)
    ids = list(dict.fromkeys(int(c) for c in crop_ids))
    predicted = predictions_for(s, ids, attribute)
    current = current_with_provenance(s, ids, attribute)
    targets = [c for c in ids
               if c in predicted and predicted[c].value == text and (current.get(c) or (None,))[0] is None]  # fmt: skip
    return add_labels(s, taxonomy, targets, attribute, text, annotator_id=annotator_id, stamp=stamp, source=source,
                    provenance="accepted")


class PredictionsMixin(HistoryMixin):
    """Accepting predictions, as part of the annotation service."""

    def accept_prediction(self, crop_id: int, attribute: str | None = None, *, along_track: bool = True,
                          source: str = "app") -> Action:
        """One key: the crop's prediction becomes its label (``accepted``) and, with ``along_track``, the
        rest of its segment's (``propagated``, as any value key of the attribute view). One undoable action."""
        attribute = attribute or self.attribute
        self._check_source(source)
        self._check_write([attribute])
        with self.project.session() as s:
            pred = predictions_for(s, [int(crop_id)], attribute).get(int(crop_id))
        if pred is None or pred.value is None:
            raise UserError(f"crop {crop_id} has no prediction of {attribute} (see `portrait prelabel`)")
        action = self._write(lambda s, stamp: label_segment(s, self.taxonomy, crop_id, attribute, pred.value,
                                                            annotator_id=self.annotator.id, stamp=stamp, source=source,
                                                            provenance="accepted", along_track=along_track),
                             source=source)  # fmt: skip
        forget_labelled(self, action)
        return action

    def predicted_values(self, attribute: str | None = None) -> list[ValueCount]:
        """Values predicted for unlabelled crops of the attribute, most crops first (the grid's choices)."""
        attribute = attribute or self.attribute
        self.taxonomy.attribute(attribute)
        with self.project.session() as s:
            return predicted_values(s, attribute)

    def grid(self, value, attribute: str | None = None, *, after: tuple[float, int] | None = None,
             limit: int = GRID_PAGE, video_id: int | None = None, count: bool = True) -> Grid:
        """A page of unlabelled crops predicted ``value``, most confident first (see :class:`Grid`)."""
        attribute = attribute or self.attribute
        text = self.taxonomy.encode(attribute, value)
        with self.project.session() as s:
            page = grid_page(s, attribute, text, limit=limit, after=after, video_id=video_id, count=count)
        items = tuple(GridItem(c.crop_id, self._image_path(c.path), c.video_id, c.track_id, c.frame_index, c.confidence)
                      for c in page.crops)  # fmt: skip
        return Grid(attribute, text, items, page.total, page.next_after)

    def accept_grid(self, crop_ids: Iterable[int], value, attribute: str | None = None, *,
                    source: str = "app") -> Action:
        """The grid's one key: every given crop still predicted ``value`` and unlabelled gets it as its label
        (``accepted``). The crops the annotator deselected are simply not given. One undoable action."""
        attribute = attribute or self.attribute
        ids = self._ids(crop_ids)
        self._check_source(source)
        self._check_write([attribute])
        self.taxonomy.encode(attribute, value)
        action = self._write(lambda s, stamp: accept_grid(s, self.taxonomy, ids, attribute, value,
                                                          annotator_id=self.annotator.id, stamp=stamp, source=source),
                             source=source)  # fmt: skip
        forget_labelled(self, action)
        return action
