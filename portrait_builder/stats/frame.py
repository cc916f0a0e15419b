"""One row per crop with everything a release or a statistic needs, read in a few SQL queries."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, select

from portrait_builder.dedup.phash import to_unsigned
from portrait_builder.split.store import attach_identity
from portrait_builder.split.store import read_frame as _read
from portrait_builder.store.models import Crop, CurrentLabel, Identity, SplitAssignment, Track

FRAME_COLUMNS = (
    "crop_id", "path", "video_id", "track_id", "tracker_id", "frame_index", "timestamp",
    "x1", "y1", "x2", "y2", "score", "blur", "phash", "phash_hex", "phash_group",
    "identity", "identity_label", "identity_name", "identity_gender", "subset",
)


def _objects(values, index) -> pd.Series:
    """An object column with None for missing (pandas 3 would infer a string dtype with NaN)."""
    arr = np.asarray(values, dtype=object).copy() if not isinstance(values, np.ndarray) or values.dtype != object \
        else values.copy()
    arr[pd.isna(arr)] = None
    return pd.Series(arr, index=index, dtype=object)


def project_frame(project, split: str | None = "default") -> pd.DataFrame:
    """A DataFrame with one row per crop (sorted by crop id).

    Columns: ``crop_id, path`` (relative to the crop root), ``video_id, track_id, tracker_id,
    frame_index, timestamp, x1, y1, x2, y2`` (box, absolute xyxy pixels), ``score, blur``,
    ``phash`` (Int64, the stored signed form), ``phash_hex`` (16 hex digits of the unsigned hash, as
    ``str(imagehash.phash(...))``), ``phash_group`` (Int64), ``identity`` (Int64 identity id; NA when
    the label is 'unknown', 'unsure' or missing), ``identity_label`` (the stored text), ``identity_name``,
    ``identity_gender`` (from the identities table), ``subset`` ('train'|'query'|'gallery' in
    ``split``, else None) and one column per other taxonomy attribute holding its current value
    decoded (multi-label attributes as a list of names; missing as None).
    """
    taxonomy = project.taxonomy
    # Every read in one session (one snapshot on SQLite), current labels one attribute at a time:
    # all of them at once (about 9 million rows at 2,500,000 crops) were a list of row tuples, a frame
    # of them and a pivot, gigabytes together.
    with project.session() as s:
        return _frame(s, taxonomy, split)


def shared(values) -> np.ndarray:
    """``values`` as an object array whose equal strings are one object each.

    The driver returns a new string per row: 9 million label values of a few dozen distinct texts
    held about 500 MB more than the distinct texts and the row pointers do."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    out = np.asarray(uniques, dtype=object)[codes] if len(uniques) else np.full(len(codes), None, dtype=object)
    out[codes < 0] = None
    return out


def iter_frames(s, taxonomy, split: str | None, chunk: int, *, attributes: bool = True) -> Iterator[pd.DataFrame]:
    """:func:`project_frame`'s rows in frames of at most ``chunk`` crops, in crop-id order, read in
    session ``s``; ``attributes=False`` leaves out the taxonomy attributes' columns (the costly part).

    Keyset pagination: the id of the next chunk's last crop is looked up, then every query of the
    frame reads that range of crop ids only, so a caller that needs every crop but not all at once
    holds one frame at a time.
    """
    lo = None
    while True:
        after = select(Crop.id).where(*_in_range(Crop.id, lo, None)).order_by(Crop.id)
        last = s.scalar(after.offset(chunk - 1).limit(1))
        hi = None if last is None else last + 1
        frame = _frame(s, taxonomy, split, lo, hi, attributes=attributes)
        if len(frame):
            yield frame
        if hi is None:
            return
        lo = hi


def _in_range(column, lo: int | None, hi: int | None) -> list[ColumnElement[bool]]:
    """``lo <= column < hi``, either side left open when None."""
    return ([] if lo is None else [column >= lo]) + ([] if hi is None else [column < hi])


def _current(s, attribute: str, lo: int | None = None, hi: int | None = None) -> pd.Series:
    """crop_id -> stored value of the current, non-cleared labels of one attribute (crops lo..hi-1)."""
    rows = _read(s, select(CurrentLabel.crop_id, CurrentLabel.value)
                 .where(CurrentLabel.attribute == attribute, CurrentLabel.value.is_not(None),
                        *_in_range(CurrentLabel.crop_id, lo, hi)),
                 ["crop_id", "value"])  # fmt: skip
    return pd.Series(shared(rows["value"]), index=rows["crop_id"].to_numpy(dtype=np.int64))


def _frame(s, taxonomy, split: str | None, lo: int | None = None, hi: int | None = None, *,
           attributes: bool = True) -> pd.DataFrame:
    """The frame of the crops with ids in [lo, hi) (all crops by default)."""
    crops = _read(
        s,
        select(
            Crop.id, Crop.path, Crop.video_id, Crop.track_id, Track.tracker_id, Crop.frame_index,
            Crop.timestamp, Crop.x1, Crop.y1, Crop.x2, Crop.y2, Crop.score, Crop.blur, Crop.phash,
            Crop.phash_group,
        )
        .join(Track, Track.id == Crop.track_id, isouter=True)
        .where(*_in_range(Crop.id, lo, hi))
        .order_by(Crop.id),
        [
            "crop_id", "path", "video_id", "track_id", "tracker_id", "frame_index", "timestamp",
            "x1", "y1", "x2", "y2", "score", "blur", "phash", "phash_group",
        ],
    )
    idents = _read(s, select(Identity.id, Identity.name, Identity.gender),
                   ["identity", "identity_name", "identity_gender"])
    assignment = None
    if split is not None:
        assignment = _read(
            s,
            select(SplitAssignment.crop_id, SplitAssignment.subset)
            .where(SplitAssignment.split == split, *_in_range(SplitAssignment.crop_id, lo, hi)),
            ["crop_id", "subset"],
        )
    for col in ("video_id", "track_id", "frame_index", "crop_id"):
        crops[col] = crops[col].astype(np.int64)
    crops["tracker_id"] = pd.array(crops["tracker_id"], dtype="Int64")
    for col in ("timestamp", "score", "blur", "x1", "y1", "x2", "y2"):
        crops[col] = crops[col].astype(np.float64)
    crops["phash"] = pd.array(crops["phash"], dtype="Int64")
    ph = crops["phash"]
    hexes = np.full(len(crops), None, dtype=object)
    has = ph.notna().to_numpy()
    if has.any():
        unsigned = to_unsigned(ph[has].to_numpy(dtype=np.int64))
        hexes[has] = [f"{int(v):016x}" for v in unsigned]
    crops["phash_hex"] = _objects(hexes, crops.index)

    label_text = _current(s, "identity", lo, hi)
    crops = attach_identity(crops, pd.DataFrame({"crop_id": label_text.index, "value": label_text.to_numpy()}))
    crops["identity_label"] = _objects(crops["crop_id"].map(label_text), crops.index)
    del label_text
    names = idents.set_index("identity")
    for col in ("identity_name", "identity_gender"):
        crops[col] = _objects(crops["identity"].map(names[col].astype(object)), crops.index)
    if assignment is not None and len(assignment):
        subset = pd.Series(shared(assignment["subset"]), index=assignment["crop_id"].to_numpy())
        crops["subset"] = _objects(crops["crop_id"].map(subset), crops.index)
    else:
        crops["subset"] = pd.Series([None] * len(crops), index=crops.index, dtype=object)
    del assignment
    if not attributes:
        return crops[list(FRAME_COLUMNS)].reset_index(drop=True)

    for attr in taxonomy.attributes:
        if attr.kind == "identity":
            continue
        current = _current(s, attr.name, lo, hi)
        if len(current):
            values = crops["crop_id"].map(current).to_numpy(dtype=object)
            del current
            decoded = np.empty(len(values), dtype=object)  # element-wise: lists must not become a 2-D array
            if attr.multilabel:
                # few distinct stored texts: decode each once, give every row its own list
                memo = {v: taxonomy.decode(attr.name, v) for v in pd.unique(values) if isinstance(v, str)}
                for i, v in enumerate(values):
                    if isinstance(v, str):
                        decoded[i] = list(memo[v])
            else:
                has_value = np.array([isinstance(v, str) for v in values], dtype=bool)
                decoded[has_value] = values[has_value]
            crops[attr.name] = pd.Series(decoded, index=crops.index, dtype=object)
        else:
            crops[attr.name] = pd.Series([None] * len(crops), index=crops.index, dtype=object)
    ordered = [c for c in FRAME_COLUMNS] + [a.name for a in taxonomy.attributes if a.kind != "identity"]
    return crops[ordered].reset_index(drop=True)
