"""Compare two releases: crops added and removed, crops moved between subsets, labels changed.

Crops are matched by store crop id (stable within one store). Identities are compared through the
store identity each release pid stands for (``manifest.identities``), because release pids are
renumbered per release.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from portrait_builder.release.reader import load_release
from portrait_builder.release.records import attribute_columns, provenance_column


def _norm(value):
    if value is None or (not isinstance(value, list) and pd.isna(value)):
        return None
    return list(value) if isinstance(value, list) else value


def diff_releases(a: str | Path, b: str | Path) -> dict:
    """``{"a", "b", "same_store_fingerprint", "added", "removed", "moved", "changed", "summary"}``.

    ``added``/``removed``: crop ids only in b / only in a. ``moved``: ``{crop_id, old, new}`` subsets.
    ``changed``: ``{crop_id, attribute, old, new}`` for identity (store identity ids) and every
    attribute present in both releases. ``provenance``: ``{crop_id, attribute, old, new}`` where a
    label's provenance differs (e.g. an accepted prediction confirmed by a click), compared only when
    both releases carry provenance (``provenance_compared``). Lists are sorted by crop id, then attribute.
    """
    ra, rb = load_release(a), load_release(b)
    da = ra.annotations.set_index("crop_id", drop=False)
    db = rb.annotations.set_index("crop_id", drop=False)
    ids_a, ids_b = set(da.index), set(db.index)
    common = sorted(ids_a & ids_b)

    def store_ids(release, df):
        mapping = {i["pid"]: i["store_identity"] for i in release.manifest.get("identities", [])}
        return {c: None if pd.isna(p) else mapping.get(int(p)) for c, p in zip(df.index, df["identity"], strict=True)}

    ia, ib = store_ids(ra, da), store_ids(rb, db)
    moved, changed = [], []
    attrs = [c for c in attribute_columns(ra.taxonomy) if c in da.columns and c in db.columns]
    compare_provenance = ra.has_provenance and rb.has_provenance
    provenance_attrs = [a.name for a in ra.taxonomy.attributes
                        if provenance_column(a.name) in da.columns and provenance_column(a.name) in db.columns]
    provenance = []
    for crop_id in common:
        sa, sb = da.at[crop_id, "subset"], db.at[crop_id, "subset"]
        if sa != sb:
            moved.append({"crop_id": int(crop_id), "old": sa, "new": sb})
        old, new = ia.get(crop_id), ib.get(crop_id)
        if old != new:
            changed.append({"crop_id": int(crop_id), "attribute": "identity", "old": old, "new": new})
        for attr in attrs:
            old, new = _norm(da.at[crop_id, attr]), _norm(db.at[crop_id, attr])
            if old != new:
                changed.append({"crop_id": int(crop_id), "attribute": attr, "old": old, "new": new})
        for attr in provenance_attrs if compare_provenance else ():
            column = provenance_column(attr)
            old, new = _norm(da.at[crop_id, column]), _norm(db.at[crop_id, column])
            if old != new:
                provenance.append({"crop_id": int(crop_id), "attribute": attr, "old": old, "new": new})
    added, removed = sorted(int(i) for i in ids_b - ids_a), sorted(int(i) for i in ids_a - ids_b)
    return {
        "a": ra.version,
        "b": rb.version,
        "same_store_fingerprint": ra.manifest["store_fingerprint"] == rb.manifest["store_fingerprint"],
        "added": added,
        "removed": removed,
        "moved": moved,
        "changed": changed,
        "provenance": provenance,
        "provenance_compared": compare_provenance,
        "summary": {"added": len(added), "removed": len(removed), "moved": len(moved), "changed": len(changed),
                    "provenance": len(provenance), "common": len(common)},
    }
