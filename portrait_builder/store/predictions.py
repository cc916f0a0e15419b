"""Baseline predictions in the store: the writes of ``portrait prelabel`` and the reads the app's views make.

A prediction is a guess, stored apart from labels (one per crop and attribute, with its confidence and
the sha256 of the checkpoint that made it); nothing here writes a label. The views read plain
dataclasses: the prediction of the crops they show, and the grid of unlabelled crops that share a
predicted value, most confident first, page by page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from portrait_builder.store.models import Crop, CurrentLabel, Prediction, now

# The grid view's page: 6 x 8 thumbnails (issue 14's "48 crops predicted standing").
GRID_PAGE = 48


@dataclass(frozen=True)
class PredictionRecord:
    """One stored prediction. ``value`` is the stored text (multi-label names joined by ``|``)."""

    crop_id: int
    attribute: str
    value: str | None
    confidence: float
    model: str
    created_at: float


@dataclass(frozen=True)
class GridCrop:
    """A thumbnail of the grid view: the crop, where its image is, and how sure the model was."""

    crop_id: int
    path: str  # relative to the project's crop root
    video_id: int
    track_id: int
    frame_index: int
    confidence: float


@dataclass(frozen=True)
class GridPage:
    """One page of unlabelled crops predicted ``value`` for ``attribute``, most confident first.

    ``next_after`` is the key to pass as ``after`` for the next page (None on the last page). Keys, not
    offsets: accepting a page removes its crops from the grid, and an offset would then skip crops.
    """

    attribute: str
    value: str
    crops: list[GridCrop]
    total: int | None  # unlabelled crops with this prediction on every page; None when not counted
    next_after: tuple[float, int] | None


@dataclass(frozen=True)
class ValueCount:
    value: str
    crops: int  # unlabelled crops predicted this value
    mean_confidence: float


def _record(row: Prediction) -> PredictionRecord:
    return PredictionRecord(row.crop_id, row.attribute, row.value, row.confidence, row.model, row.created_at)


def _unlabelled(attribute: str):
    """Join condition and filter: predictions of ``attribute`` whose crop has no current (non-cleared) label."""
    on = and_(CurrentLabel.crop_id == Prediction.crop_id, CurrentLabel.attribute == attribute)
    return on, or_(CurrentLabel.crop_id.is_(None), CurrentLabel.value.is_(None))


def predictions_for(session: Session, crop_ids: Iterable[int], attribute: str) -> dict[int, PredictionRecord]:
    """``{crop_id: prediction}`` of the given crops for ``attribute`` (crops without one are absent)."""
    ids = list(crop_ids)
    out: dict[int, PredictionRecord] = {}
    for start in range(0, len(ids), 900):  # SQLite limits bound parameters per statement
        query = select(Prediction).where(Prediction.attribute == attribute,
                                         Prediction.crop_id.in_(ids[start:start + 900]))
        out.update({row.crop_id: _record(row) for row in session.scalars(query)})
    return out


def predicted_values(session: Session, attribute: str) -> list[ValueCount]:
    """The values predicted for unlabelled crops of ``attribute``, with how many crops each, most crops first
    (what the grid view offers to pick from)."""
    on, unlabelled = _unlabelled(attribute)
    query = (
        select(Prediction.value, func.count(), func.avg(Prediction.confidence))
        .outerjoin(CurrentLabel, on)
        .where(Prediction.attribute == attribute, Prediction.value.is_not(None), unlabelled)
        .group_by(Prediction.value)
    )
    rows = [ValueCount(v, int(n), float(c)) for v, n, c in session.execute(query)]
    return sorted(rows, key=lambda r: (-r.crops, r.value))


def grid_page(
    session: Session,
    attribute: str,
    value: str,
    *,
    limit: int = GRID_PAGE,
    after: tuple[float, int] | None = None,
    video_id: int | None = None,
    count: bool = False,
) -> GridPage:
    """Unlabelled crops whose prediction for ``attribute`` is ``value`` (stored text), ordered by confidence
    (highest first; equal confidences by crop id, highest first), at most ``limit``, starting after the key
    ``after`` of the previous page.

    Both orderings run backwards along ``ix_predictions_attribute_value`` (attribute, value, confidence,
    crop_id), so a page reads about ``limit`` rows plus the labelled ones it skips, whatever the grid's
    size. ``video_id`` keeps one movie's crops. ``count=True`` also counts the whole grid (``total``):
    that reads every crop predicted ``value``, so ask once, not per page (``predicted_values`` gives all
    the counts at once).
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    on, unlabelled = _unlabelled(attribute)
    where = [Prediction.attribute == attribute, Prediction.value == value, unlabelled]
    if video_id is not None:
        where.append(Crop.video_id == video_id)
    base = select(Prediction.crop_id).join(Crop, Crop.id == Prediction.crop_id).outerjoin(CurrentLabel, on).where(*where)
    query = (
        select(Crop.id, Crop.path, Crop.video_id, Crop.track_id, Crop.frame_index, Prediction.confidence)
        .join(Crop, Crop.id == Prediction.crop_id)
        .outerjoin(CurrentLabel, on)
        .where(*where)
    )
    if after is not None:
        conf, crop_id = float(after[0]), int(after[1])
        # the plain range on confidence lets both databases seek the index to the key; the OR only sorts out ties
        query = query.where(Prediction.confidence <= conf,
                            or_(Prediction.confidence < conf, Prediction.crop_id < crop_id))
    query = query.order_by(Prediction.confidence.desc(), Prediction.crop_id.desc()).limit(limit + 1)
    rows = session.execute(query).all()
    crops = [GridCrop(int(i), p, int(v), int(t), int(f), float(c)) for i, p, v, t, f, c in rows[:limit]]
    next_after = (crops[-1].confidence, crops[-1].crop_id) if len(rows) > limit else None
    total = int(session.scalar(select(func.count()).select_from(base.subquery()))) if count else None
    return GridPage(attribute, value, crops, total, next_after)


def predicted_crop_ids(session: Session, attribute: str, model: str) -> set[int]:
    """Crops that already hold a prediction of ``attribute`` from checkpoint ``model`` (what a rerun skips)."""
    query = select(Prediction.crop_id).where(Prediction.attribute == attribute, Prediction.model == model)
    return set(session.scalars(query))


def unlabelled_crops(session: Session, attribute: str) -> list[tuple[int, str]]:
    """``(crop_id, path)`` of every crop without a current label of ``attribute``, by crop id."""
    on = and_(CurrentLabel.crop_id == Crop.id, CurrentLabel.attribute == attribute)
    query = (
        select(Crop.id, Crop.path)
        .outerjoin(CurrentLabel, on)
        .where(or_(CurrentLabel.crop_id.is_(None), CurrentLabel.value.is_(None)))
        .order_by(Crop.id)
    )
    return [(int(i), p) for i, p in session.execute(query)]


def store_predictions(session: Session, rows: Sequence[tuple[int, str, str | None, float]], model: str) -> int:
    """Upsert ``(crop_id, attribute, value, confidence)`` rows from checkpoint ``model``: a crop's earlier
    prediction of that attribute (another checkpoint's) is replaced. Returns the number of rows written."""
    if not rows:
        return 0
    stamp = now()
    values = [{"crop_id": c, "attribute": a, "value": v, "confidence": float(p), "model": model, "created_at": stamp}
              for c, a, v, p in rows]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Prediction).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Prediction.crop_id, Prediction.attribute],
        set_={"value": stmt.excluded.value, "confidence": stmt.excluded.confidence, "model": stmt.excluded.model,
              "created_at": stmt.excluded.created_at},
    )
    session.execute(stmt)
    return len(values)


def may_write_predictions(session: Session) -> bool:
    """Whether this connection's login may store predictions (always on SQLite; maintainers on PostgreSQL,
    by revision 0003's default privileges). Lets ``prelabel`` refuse before running the model."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(text(
        "SELECT has_table_privilege('predictions', 'INSERT') AND has_table_privilege('predictions', 'UPDATE')"
    )))


__all__ = [
    "GRID_PAGE",
    "GridCrop",
    "GridPage",
    "PredictionRecord",
    "ValueCount",
    "grid_page",
    "may_write_predictions",
    "predicted_crop_ids",
    "predicted_values",
    "predictions_for",
    "store_predictions",
    "unlabelled_crops",
]
