"""The one write path for labels: validate against the taxonomy, append to the history, move the current value.

Every caller (the annotation service, ``portrait labels import``, the demo's synthetic annotator)
goes through :func:`add_label`, so a value outside the taxonomy can never reach the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from portrait_builder.errors import UserError
from portrait_builder.store.models import Crop, CurrentLabel, Identity, Label, now
from portrait_builder.taxonomy import Taxonomy

SOURCES = ("app", "undo", "redo", "review", "import", "synthetic")
# How a label came about (revision 0004), so review can filter and agreement can use clicks only:
# clicked (a person chose the value for this crop), accepted (a person accepted a prediction),
# propagated (along a track from a labelled crop), inherited (from the character's static attributes),
# imported (from a file), merged (two characters merged into one).
PROVENANCES = ("clicked", "accepted", "propagated", "inherited", "imported", "merged")


@dataclass(frozen=True)
class LabelRecord:
    id: int
    crop_id: int
    attribute: str
    value: str | None
    annotator_id: int | None
    source: str
    created_at: float
    provenance: str = "clicked"


def _record(row: Label) -> LabelRecord:
    return LabelRecord(row.id, row.crop_id, row.attribute, row.value, row.annotator_id, row.source, row.created_at,
                       row.provenance or "clicked")


def validate_value(session: Session, taxonomy: Taxonomy, crop_id: int, attribute: str, value) -> str | None:
    """Return the stored text of ``value`` for this crop, or raise :class:`UserError`."""
    crop = session.get(Crop, crop_id)
    if crop is None:
        raise UserError(f"no crop with id {crop_id}")
    if value is None:
        return None
    text = taxonomy.encode(attribute, value)
    if taxonomy.attribute(attribute).kind == "identity" and text.isdigit():
        identity = session.get(Identity, int(text))
        if identity is None:
            raise UserError(f"no identity with id {text}")
        if identity.video_id != crop.video_id:
            raise UserError(f"identity {text} belongs to another video than crop {crop_id}")
    return text


def add_label(
    session: Session,
    taxonomy: Taxonomy,
    crop_id: int,
    attribute: str,
    value,
    *,
    annotator_id: int | None = None,
    source: str = "app",
    created_at: float | None = None,
    provenance: str | None = None,
) -> LabelRecord:
    """Append a label and make it the current one. ``value=None`` clears the attribute (an undo).

    ``provenance`` (one of :data:`PROVENANCES`) defaults to ``imported`` for imports, else ``clicked``.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown label source {source!r}; valid: {', '.join(SOURCES)}")
    if provenance is None:
        provenance = "imported" if source == "import" else "clicked"
    if provenance not in PROVENANCES:
        raise ValueError(f"unknown label provenance {provenance!r}; valid: {', '.join(PROVENANCES)}")
    text = validate_value(session, taxonomy, crop_id, attribute, value)
    row = Label(
        crop_id=crop_id,
        attribute=attribute,
        value=text,
        annotator_id=annotator_id,
        source=source,
        created_at=created_at if created_at is not None else now(),
        provenance=provenance,
    )
    session.add(row)
    session.flush()
    _upsert_current(session, row)
    return _record(row)


def add_labels(s: Session, taxonomy: Taxonomy, crop_ids: Sequence[int], attribute: str, value, *,
             annotator_id: int | None, stamp: float, source: str, provenance: str) -> list[LabelRecord]:
    """One value on many crops of a track: what :func:`add_label` writes, in
    one INSERT and one current-labels move instead of two statements per crop (a key labels a whole
    track, a grid page accepts 48 crops: two round trips per crop would be most of a click's budget).

    Only for attributes of a fixed value set (the value is validated once; the crops come from the
    track just read). Identity values need add_label's per-crop movie check and go through it.
    """
    if not crop_ids:
        return []
    if taxonomy.attribute(attribute).kind == "identity":
        return [add_label(s, taxonomy, c, attribute, value, annotator_id=annotator_id, source=source, created_at=stamp,
                          provenance=provenance) for c in crop_ids]  # fmt: skip
    if source not in SOURCES or provenance not in PROVENANCES:
        raise ValueError(f"unknown label source {source!r} or provenance {provenance!r}")
    text_value = taxonomy.encode(attribute, value)
    rows = [{"crop_id": int(c), "attribute": attribute, "value": text_value, "annotator_id": annotator_id,
             "source": source, "created_at": stamp, "provenance": provenance} for c in crop_ids]  # fmt: skip
    ids = [r.id for r in s.execute(insert(Label).returning(Label.id, sort_by_parameter_order=True), rows)]
    if s.get_bind().dialect.name == "postgresql":
        # the same definer's-rights function add_label calls: writers have no write access to current_labels
        s.execute(text("SELECT portrait_set_current(i) FROM unnest(CAST(:ids AS integer[])) AS i"), {"ids": ids})
    else:
        current = [{"crop_id": r["crop_id"], "attribute": attribute, "value": text_value, "label_id": i,
                    "annotator_id": annotator_id} for r, i in zip(rows, ids, strict=True)]  # fmt: skip
        for start in range(0, len(current), 150):  # 5 parameters a row: under SQLite's bound-parameter limit
            _sqlite_upsert_current(s, current[start:start + 150])
    s.expire_all()  # ORM rows of current_labels loaded in this session follow the statements above
    return [LabelRecord(i, r["crop_id"], attribute, text_value, annotator_id, source, stamp, provenance)
            for r, i in zip(rows, ids, strict=True)]  # fmt: skip


def _sqlite_upsert_current(session: Session, rows: list[dict]) -> None:
    """SQLite: point current_labels at these label rows, each unless a newer label of its (crop,
    attribute) already won (PostgreSQL does the same inside ``portrait_set_current``)."""
    stmt = sqlite_insert(CurrentLabel).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[CurrentLabel.crop_id, CurrentLabel.attribute],
        set_={"value": stmt.excluded.value, "label_id": stmt.excluded.label_id,
              "annotator_id": stmt.excluded.annotator_id},
        where=CurrentLabel.label_id < stmt.excluded.label_id,
    )
    session.execute(stmt)


def _upsert_current(session: Session, row: Label) -> None:
    """Point current_labels at ``row`` unless a newer label already won.

    An upsert rather than read-then-write: two writers of one (crop, attribute) on PostgreSQL would
    otherwise both try to insert, and the newest label id must win whichever commits first.
    On PostgreSQL the upsert runs inside ``portrait_set_current`` (revision 0003): annotators' logins
    have no write access to current_labels, and that function can only make it follow the history.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.portrait_set_current(row.id)))
    else:
        _sqlite_upsert_current(session, [{"crop_id": row.crop_id, "attribute": row.attribute, "value": row.value,
                                          "label_id": row.id, "annotator_id": row.annotator_id}])  # fmt: skip
    # keep ORM objects already loaded in this session in step with the row just written
    cached = session.identity_map.get(session.identity_key(CurrentLabel, (row.crop_id, row.attribute)))
    if cached is not None:
        session.expire(cached)


def current_labels(session: Session, crop_ids: Iterable[int] | None = None) -> dict[int, dict[str, str]]:
    """``{crop_id: {attribute: stored value}}`` of the current, non-cleared labels."""
    query = select(CurrentLabel.crop_id, CurrentLabel.attribute, CurrentLabel.value).where(
        CurrentLabel.value.is_not(None)
    )
    if crop_ids is not None:
        query = query.where(CurrentLabel.crop_id.in_(list(crop_ids)))
    out: dict[int, dict[str, str]] = {}
    for crop_id, attribute, value in session.execute(query):
        out.setdefault(crop_id, {})[attribute] = value
    return out


def label_history(session: Session, crop_id: int, attribute: str | None = None) -> list[LabelRecord]:
    """Every label of a crop, oldest first."""
    query = select(Label).where(Label.crop_id == crop_id).order_by(Label.id)
    if attribute is not None:
        query = query.where(Label.attribute == attribute)
    return [_record(r) for r in session.scalars(query)]
