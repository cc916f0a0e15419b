"""Identities outside the app on a big store: label import by character name against import by id,
and `portrait identities merge` against the app's own click that writes the same labels.

Builds a project with the shared generator (benchmarks/bigstore.py: 20 named characters per movie,
40 % of tracks identified), then, each pair timed in this one process:

* import N identity rows of unidentified crops by id (the baseline) and N other rows by name
  (``CHARACTER 3``: letter case changed; plus five new names, which create characters), twice each
  in the order id, name, name, id on disjoint crops, best of two;
* the app's ``assign_identity`` of M crops to a character of the other gender (identity + gender
  labels per crop, one transaction: the baseline; undone afterwards), then ``merge`` of a character
  with M crops into one of the other gender (the same two labels per crop).

    python benchmarks/identities.py [--crops 50000] [--rows 3000] [--db-url URL] [--keep DIR]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from bigstore import BigStoreSpec
from bigstore import build as build_store
from sqlalchemy import select

from portrait_builder.annotation import AnnotationService, add_annotator, merge_identities
from portrait_builder.release import import_labels
from portrait_builder.store import Crop, CurrentLabel, Identity

VIDEOS = 10
IDENTITIES_PER_VIDEO = 20


def unidentified(project, n: int) -> list[tuple[int, int]]:
    """(crop id, video id) of ``2 n`` crops without a current identity label, in id order."""
    with project.session() as s:
        labelled = select(CurrentLabel.crop_id).where(CurrentLabel.attribute == "identity")
        rows = s.execute(select(Crop.id, Crop.video_id).where(Crop.id.not_in(labelled)).order_by(Crop.id)
                         .limit(2 * n)).all()  # fmt: skip
    if len(rows) < 2 * n:
        sys.exit(f"only {len(rows)} unidentified crops; use more --crops or fewer --rows")
    return [(r[0], r[1]) for r in rows]


def characters(project) -> dict[int, list[tuple[int, str, str]]]:
    with project.session() as s:
        rows = s.execute(select(Identity.video_id, Identity.id, Identity.name, Identity.gender).order_by(Identity.id))
        out: dict[int, list[tuple[int, str, str]]] = {}
        for video_id, ident, name, gender in rows:
            out.setdefault(video_id, []).append((ident, name, gender))
    return out


def crops_of(project, identity_id: int) -> list[int]:
    with project.session() as s:
        return list(s.scalars(select(CurrentLabel.crop_id).where(CurrentLabel.attribute == "identity",
                                                                 CurrentLabel.value == str(identity_id))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", type=int, default=50_000)
    ap.add_argument("--rows", type=int, default=3_000, help="identity rows per import file")
    ap.add_argument("--db-url", default=None, help="PostgreSQL URL of an empty database (default: SQLite)")
    ap.add_argument("--keep", default=None, help="build the project here and keep it")
    args = ap.parse_args()

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pb_identities_"))
    try:
        spec = BigStoreSpec(crops=args.crops, videos=VIDEOS, identities_per_video=IDENTITIES_PER_VIDEO,
                            identified=0.4, labels=None, files=False, embeddings=False)  # fmt: skip
        project, info = build_store(root / "proj", spec, db_url=args.db_url)
        add_annotator(project, "bench", "maintainer", "identity")
        cast = characters(project)
        rows = unidentified(project, 2 * args.rows)
        # four files on disjoint crops, imported id, name, name, id (the store grows as they go in)
        times: dict[str, list[float]] = {"id": [], "name": []}
        created = 0
        for k, key in enumerate(("id", "name", "name", "id")):
            part = rows[k * args.rows:(k + 1) * args.rows]
            if key == "id":
                data = [(c, "identity", str(cast[v][c % IDENTITIES_PER_VIDEO][0]), "bench") for c, v in part]
            else:
                data = [(c, "identity", cast[v][c % IDENTITIES_PER_VIDEO][1].upper(), "bench") for c, v in part]
                for i in range(0, len(data), max(1, len(data) // 5)):  # five new characters, created on first use
                    data[i] = (data[i][0], "identity", f"newcomer {k}.{i}", "bench")
            path = root / f"{k}_{key}.csv"
            pd.DataFrame(data, columns=["crop_id", "attribute", "value", "annotator"]).to_csv(path, index=False)
            t0 = time.perf_counter()
            created += len(import_labels(project, path).created)
            times[key].append(time.perf_counter() - t0)
        t_id, t_name = min(times["id"]), min(times["name"])

        # merge: the largest character of movie 1 into a character of the other gender
        chars = sorted(cast[min(cast)], key=lambda ch: -len(crops_of(project, ch[0])))
        other = chars[0]
        keep = next(ch for ch in chars[1:] if ch[2] != other[2])
        moving = crops_of(project, other[0])
        with AnnotationService(project, "bench") as svc:
            t0 = time.perf_counter()
            svc.assign_identity(moving, keep[0])
            t_click = time.perf_counter() - t0
            svc.undo()
        t0 = time.perf_counter()
        result = merge_identities(project, keep[0], other[0], "bench")
        t_merge = time.perf_counter() - t0
        assert result.moved == len(moving) and result.genders == len(moving)

        print(f"machine: {platform.machine()} {platform.system()}, {project.engine.dialect.name}; store "
              f"{info.crops:,} crops, {len(cast) * IDENTITIES_PER_VIDEO} characters")
        print(f"import {args.rows:,} identity rows by id (best of 2):   {t_id:7.2f} s ({args.rows / t_id:,.0f} rows/s)")
        print(f"import {args.rows:,} identity rows by name (best of 2): {t_name:7.2f} s ({args.rows / t_name:,.0f} "
              f"rows/s), {created} characters created; name / id = {t_name / t_id:.2f}")
        print(f"app click assigning {len(moving):,} crops (identity + gender): {t_click:6.2f} s")
        print(f"merge moving {result.moved:,} crops (identity + gender):       {t_merge:6.2f} s; "
              f"merge / click = {t_merge / t_click:.2f}")
        project.close()
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
