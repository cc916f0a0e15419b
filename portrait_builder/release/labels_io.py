"""Label export (every crop with its current labels) and all-or-nothing label import.

Import goes through :func:`portrait_builder.store.add_label`, the same validation the annotation app
uses, inside one write transaction: one bad row and nothing is written. Identities may be given by
character name (labels made in another tool); new characters are created in that same transaction.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from portrait_builder.annotation.identities import GENDER, CreatedIdentity, identity_name, preload, resolve_names
from portrait_builder.errors import UserError
from portrait_builder.store.labels import add_label
from portrait_builder.store.models import Annotator, Crop, CurrentLabel, Video

FORMATS = (".csv", ".parquet")
IMPORT_COLUMNS = ("crop_id", "attribute", "value", "annotator")
EXPORT_COLUMNS = ("crop_id", "file", "video", "video_id", "track", "frame", "x1", "y1", "x2", "y2")


class LabelImportError(UserError):
    """Some rows of an import file are invalid; ``problems`` has one line per bad row. Nothing was written."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(f"{len(problems)} bad rows; nothing was imported")


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"{path}: unsupported format {suffix or '(none)'}; use one of {', '.join(FORMATS)}")
    return suffix


def labels_frame(project) -> pd.DataFrame:
    """One row per crop: crop id, file (relative to the crop root), video, track, frame, box, then one column
    per taxonomy attribute with the current label in its stored text form (multi-label values joined by
    ``|``; identity as the store identity id or a named value such as ``unknown``); empty when unlabelled."""
    with project.session() as s:
        crops = pd.DataFrame(
            s.execute(
                select(Crop.id, Crop.path, Video.title, Crop.video_id, Crop.track_id, Crop.frame_index,
                       Crop.x1, Crop.y1, Crop.x2, Crop.y2)
                .join(Video, Video.id == Crop.video_id)
                .order_by(Crop.id)
            ).all(),
            columns=list(EXPORT_COLUMNS),
        )  # fmt: skip
        current = pd.DataFrame(
            s.execute(
                select(CurrentLabel.crop_id, CurrentLabel.attribute, CurrentLabel.value).where(
                    CurrentLabel.value.is_not(None)
                )
            ).all(),
            columns=["crop_id", "attribute", "value"],
        )
    for c in ("x1", "y1", "x2", "y2"):
        crops[c] = crops[c].astype("float32")
    wide = current.pivot(index="crop_id", columns="attribute", values="value") if len(current) else pd.DataFrame()
    for name in project.taxonomy.names:
        crops[name] = crops["crop_id"].map(wide[name]) if name in wide.columns else None
        crops[name] = crops[name].astype(object).where(crops[name].notna(), None)
    return crops


def export_labels(project, out: str | Path) -> int:
    """Write :func:`labels_frame` to ``out`` (.csv or .parquet), atomically; return the number of rows."""
    out = Path(out)
    fmt = _format(out)
    if not out.parent.is_dir():
        raise UserError(f"folder {out.parent} does not exist")
    df = labels_frame(project)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        if fmt == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.astype({n: "string" for n in project.taxonomy.names}).to_parquet(tmp, index=False)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return len(df)


def _read_import(path: Path) -> pd.DataFrame:
    fmt = _format(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    try:
        if fmt == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            df = pd.read_parquet(path).astype(object)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise UserError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    missing = [c for c in IMPORT_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{path} lacks column(s) {', '.join(missing)}; needed: {', '.join(IMPORT_COLUMNS)}")
    return df


@dataclass(frozen=True)
class ImportSummary:
    rows: int
    by_attribute: dict[str, int]
    created: tuple[CreatedIdentity, ...] = ()  # characters created from names in the file


def import_labels(project, path: str | Path) -> ImportSummary:
    """Add one label per row (columns crop_id, attribute, value, annotator [name]) in ONE transaction.

    Rows are numbered from 1 (the first data row; a CSV header is not counted). Every row is checked
    (crop exists, annotator exists, value valid for the attribute per the taxonomy and, for identity,
    the identity exists in the crop's video); if any row is bad, :class:`LabelImportError` lists them
    all and nothing is written. Labels are recorded with source ``import``.

    An identity value may be a character's name instead of an id (``name:`` in front forces a name
    that looks like an id or like ``unknown``): the character of that name in the crop's movie, letter
    case aside, created on first use with the gender the file's gender rows give its crops
    (``unsure`` when none; see :func:`portrait_builder.annotation.identities.resolve_names`). New
    characters are written in the same transaction, so a bad row leaves none behind.
    """
    path = Path(path)
    df = _read_import(path)
    taxonomy = project.taxonomy
    rows = df[list(IMPORT_COLUMNS)].to_dict("records")
    ident_attr = next((a.name for a in taxonomy.attributes if a.kind == "identity"), None)

    def run(session) -> ImportSummary:
        annotators = {name: aid for aid, name in session.execute(select(Annotator.id, Annotator.name))}
        problems: list[tuple[int, str]] = []
        parsed: list[tuple[int, int, str, str, int]] = []
        for n, row in enumerate(rows, start=1):
            text_id = "" if row["crop_id"] is None else str(row["crop_id"]).strip()
            try:
                crop_id = int(float(text_id)) if text_id and float(text_id).is_integer() else int(text_id)
            except ValueError:
                problems.append((n, f"crop id {text_id!r} is not an integer"))
                continue
            attribute = "" if row["attribute"] is None else str(row["attribute"]).strip()
            value = "" if row["value"] is None else str(row["value"]).strip()
            annotator = "" if row["annotator"] is None else str(row["annotator"]).strip()
            if annotator not in annotators:
                problems.append((n, f"no annotator named {annotator!r}"))
                continue
            if not value:
                problems.append((n, f"empty value for {attribute or 'an empty attribute'}"))
                continue
            parsed.append((n, crop_id, attribute, value, annotators[annotator]))
        named = [(n, crop_id, name, aid) for n, crop_id, attribute, value, aid in parsed
                 if attribute == ident_attr and (name := identity_name(taxonomy, value))]  # fmt: skip
        resolved: dict[int, str | None] = {}
        created: list[CreatedIdentity] = []
        if named:
            genders: dict[int, list[tuple[int, str]]] = {}
            for n, crop_id, attribute, value, _ in parsed:
                if attribute == GENDER:
                    genders.setdefault(crop_id, []).append((n, value))
            resolved, name_problems, created = resolve_names(session, taxonomy, named, genders)
            problems += name_problems
        bad = {n for n, _ in problems} | {n for n, ident in resolved.items() if ident is None}
        # add_label checks each crop (and identity) with session.get; loading them here in a few
        # queries turns those into identity-map hits (about a third of the time per row)
        keep_alive = preload(session, [p[1] for p in parsed], [resolved.get(p[0], p[3]) for p in parsed
                                                                 if p[2] == ident_attr])  # fmt: skip
        counts: dict[str, int] = {}
        for n, crop_id, attribute, value, aid in parsed:
            if n in bad:
                continue
            try:
                add_label(session, taxonomy, crop_id, attribute, resolved.get(n, value), annotator_id=aid,
                          source="import")  # fmt: skip
            except UserError as exc:
                problems.append((n, str(exc)))
                continue
            counts[attribute] = counts.get(attribute, 0) + 1
        del keep_alive
        if problems:
            raise LabelImportError([f"row {n}: {text}" for n, text in sorted(problems, key=lambda p: p[0])])
        return ImportSummary(rows=len(rows), by_attribute=dict(sorted(counts.items())), created=tuple(created))

    return project.run_write(run)  # a LabelImportError rolls the whole transaction back
