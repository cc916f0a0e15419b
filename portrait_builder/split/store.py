"""Store side of splits: read crops with their current identity, write ``split_assignments``."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd
from sqlalchemy import delete, insert, select

from portrait_builder.errors import UserError
from portrait_builder.split.core import SplitConfig, split_crops, summarize
from portrait_builder.store.models import Crop, CurrentLabel, Setting, SplitAssignment

log = logging.getLogger(__name__)

IDENTITY_ATTRIBUTE = "identity"
SPLIT_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def split_setting_key(name: str) -> str:
    return f"split:{name}"


def read_frame(session, stmt, columns: list[str]) -> pd.DataFrame:
    """Rows of ``stmt`` as a DataFrame, fetched as plain tuples from the driver's cursor.

    At 10^6 rows, wrapping each row in an ORM/Core Row object and letting pandas probe it cost
    several times the query itself. The SQL is still SQLAlchemy's, compiled for the session's
    dialect; its only parameters are literals we produce (a split name), bound as literals.
    """
    conn = session.connection()
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if not rows:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    return pd.DataFrame.from_records(rows, columns=columns, coerce_float=False)


def crops_for_split(project) -> pd.DataFrame:
    """crop_id, identity (Int64, NA when unknown/unsure/unlabelled), video_id, phash_group (Int64)."""
    with project.session() as s:
        crops = read_frame(s, select(Crop.id, Crop.video_id, Crop.phash_group).order_by(Crop.id),
                           ["crop_id", "video_id", "phash_group"])
        labels = read_frame(
            s,
            select(CurrentLabel.crop_id, CurrentLabel.value).where(CurrentLabel.attribute == IDENTITY_ATTRIBUTE),
            ["crop_id", "value"],
        )
    return attach_identity(crops, labels)


def attach_identity(crops: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Join identity label texts onto crops: digits -> identity id, anything else ('unknown', 'unsure', None) -> NA."""
    value = labels["value"].astype("string")
    is_id = value.str.fullmatch(r"\d+").fillna(False).astype(bool)
    ids = pd.Series(pd.array([pd.NA] * len(labels), dtype="Int64"), index=labels.index)
    ids[is_id] = value[is_id].astype("int64")
    mapped = pd.Series(ids.to_numpy(), index=labels["crop_id"].to_numpy())
    out = crops.copy()
    out["identity"] = pd.array(out["crop_id"].map(mapped), dtype="Int64") if len(out) else pd.array([], dtype="Int64")
    out["phash_group"] = pd.array(out["phash_group"], dtype="Int64")
    return out


def split_project(project, config: SplitConfig, name: str = "default") -> dict:
    """Split the project's crops and store the result as split ``name`` (replacing it atomically).

    Returns the Table-2-like summary (images, identified images and IDs per subset) plus the config.
    """
    if not SPLIT_NAME.fullmatch(name or ""):
        raise UserError(f"invalid split name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    df = crops_for_split(project)
    assignment = split_crops(df, config)
    summary = summarize(df, assignment)
    rows = [{"split": name, "crop_id": int(c), "subset": s} for c, s in assignment.items()]

    def write(session):
        session.execute(delete(SplitAssignment).where(SplitAssignment.split == name))
        for start in range(0, len(rows), 20000):
            session.execute(insert(SplitAssignment.__table__), rows[start : start + 20000])
        value = {"config": config.as_dict(), "summary": summary}
        setting = session.get(Setting, split_setting_key(name))
        if setting is None:
            session.add(Setting(key=split_setting_key(name), value=value))
        else:
            setting.value = value

    project.run_write(write)
    log.info("split %r: %s", name, summary)
    return {"name": name, "config": config.as_dict(), "summary": summary}


def read_split(project, name: str = "default") -> pd.Series:
    """The stored assignment of split ``name`` as a Series crop_id -> subset (empty if none)."""
    with project.session() as s:
        rows = s.execute(
            select(SplitAssignment.crop_id, SplitAssignment.subset).where(SplitAssignment.split == name)
        ).all()
    if not rows:
        return pd.Series([], dtype=object, name="subset", index=pd.Index([], dtype=np.int64, name="crop_id"))
    arr = np.array(rows, dtype=object)
    return pd.Series(arr[:, 1], index=pd.Index(arr[:, 0].astype(np.int64), name="crop_id"), name="subset")
