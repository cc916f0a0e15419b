"""Leases on the annotation queues: which annotator holds which unlabelled crop of an attribute, until when.

The dialect-specific SQL lives here: on PostgreSQL a claim locks the crop rows it reads with
``FOR UPDATE OF crops SKIP LOCKED`` and ``INSERT ... ON CONFLICT DO NOTHING`` decides any race on the
unique (attribute, crop) lease; on SQLite the write transaction is ``BEGIN IMMEDIATE``, so claims are
serialised. Every function runs inside the caller's session (one transaction).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session, aliased

from portrait_builder.store.models import Crop, CurrentLabel, Label, Lease

# Built once: a fresh alias per query costs more than the query on the click path.
_CL = aliased(CurrentLabel, name="cl")
_LS = aliased(Lease, name="ls")


def _is_pg(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def insert_leases(s: Session, attribute: str, annotator_id: int, crop_ids: Sequence[int], expires: float) -> list[int]:
    """Insert leases for ``crop_ids`` that nobody holds; return the ids actually taken, in the given order."""
    if not crop_ids:
        return []
    if _is_pg(s):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    rows = [{"attribute": attribute, "crop_id": c, "annotator_id": annotator_id, "expires_at": expires} for c in crop_ids]
    stmt = insert(Lease).on_conflict_do_nothing(index_elements=["attribute", "crop_id"]).returning(Lease.crop_id)
    taken = set(s.scalars(stmt.values(rows)).all())  # one multi-row VALUES: batches are small
    return [c for c in crop_ids if c in taken]


def claim_leases(
    s: Session,
    attribute: str,
    annotator_id: int,
    n: int,
    *,
    now: float,
    expires: float,
    after: int = 0,
    second_opinion: bool = False,
) -> list[tuple[int, str]]:
    """Lease up to ``n`` unleased crops of ``attribute`` to the annotator; return (crop id, relative path) of each.

    The crops are the unlabelled ones, or with ``second_opinion`` those labelled by someone else and never
    by this annotator. Crops whose lease lapsed (a crashed or idle client) come first, then crops after
    ``after`` (the last id this annotator claimed, so claims never rescan labelled rows), then from the start.
    """
    expired = list(
        s.scalars(delete(Lease).where(Lease.attribute == attribute, Lease.expires_at < now).returning(Lease.crop_id))
    )
    cl, ls = _CL, _LS
    # NOT EXISTS rather than LEFT JOIN ... IS NULL: PostgreSQL estimates the anti-join of the
    # outer-join form at one row and sorts every crop (1.2 s at 250k crops); this form walks
    # the crops' primary key and stops after n rows (~3 ms).
    leased = select(ls.id).where(ls.crop_id == Crop.id, ls.attribute == attribute).exists()
    base = select(Crop.id).where(~leased).order_by(Crop.id).limit(n)
    labelled = select(cl.crop_id).where(cl.crop_id == Crop.id, cl.attribute == attribute, cl.value.is_not(None))
    if second_opinion:
        mine = select(Label.id).where(
            Label.crop_id == Crop.id, Label.attribute == attribute, Label.annotator_id == annotator_id
        )
        by_someone_else = labelled.where(or_(cl.annotator_id.is_(None), cl.annotator_id != annotator_id))
        base = base.where(by_someone_else.exists(), ~mine.exists())
    else:
        base = base.where(~labelled.exists())
    taken: list[tuple[int, str]] = []
    windows = [base.where(Crop.id.in_(sorted(expired)[:n]))] if expired else []
    windows += [base.where(Crop.id > lower) for lower in dict.fromkeys((after, 0))]
    pg = _is_pg(s)
    for query in windows:
        if pg:
            query = query.with_for_update(of=Crop, skip_locked=True)
        rows = s.execute(query.add_columns(Crop.path).limit(n - len(taken))).all()
        paths = {r[0]: r[1] for r in rows}
        taken += [(c, paths[c]) for c in insert_leases(s, attribute, annotator_id, list(paths), expires)]
        if len(taken) >= n:
            break
    return taken


def renew_leases(s: Session, attribute: str, annotator_id: int, expires: float) -> int:
    """Move the expiry of every lease the annotator holds on the queue; returns how many."""
    res = s.execute(
        update(Lease).where(Lease.annotator_id == annotator_id, Lease.attribute == attribute).values(expires_at=expires)
    )
    return res.rowcount or 0


def release_leases(s: Session, attribute: str, annotator_id: int, crop_ids: Sequence[int] | None = None) -> None:
    """Give back the annotator's leases on the queue (only those on ``crop_ids`` when given)."""
    stmt = delete(Lease).where(Lease.annotator_id == annotator_id, Lease.attribute == attribute)
    if crop_ids is not None:
        stmt = stmt.where(Lease.crop_id.in_(list(crop_ids)))
    s.execute(stmt)


def held_leases(s: Session, attribute: str, annotator_id: int) -> list[int]:
    """Crop ids the annotator holds on the queue, ascending."""
    return list(
        s.scalars(
            select(Lease.crop_id)
            .where(Lease.annotator_id == annotator_id, Lease.attribute == attribute)
            .order_by(Lease.crop_id)
        )
    )
