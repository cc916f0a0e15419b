"""Store side of dedup: fill ``crops.phash`` (resumable) and ``crops.phash_group`` for a project."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, select, update

from portrait_builder.dedup.groups import DEFAULT_THRESHOLD, group_hashes
from portrait_builder.dedup.phash import MIN_FILES_FOR_POOL, phash_files_checked, to_signed, to_unsigned
from portrait_builder.errors import UserError
from portrait_builder.store.models import Crop, Setting

log = logging.getLogger(__name__)

GROUPS_SETTING = "phash_groups"
# Core table: executemany UPDATEs by bound id, without the ORM bulk-update machinery.
CROPS = Crop.__table__


@dataclass(frozen=True)
class HashReport:
    hashed: int
    already: int
    missing_files: int
    seconds: float


def hash_project(project, progress: bool = True, batch: int = 2048, workers: int | None = None) -> HashReport:
    """Compute the pHash of every crop that has none; each batch is committed on its own.

    Interrupting loses at most the batch in flight; running again picks up where it stopped.
    Crops whose file is missing or unreadable keep ``phash`` NULL and are counted in the report.
    """
    from tqdm import tqdm

    if batch < 1:
        raise UserError("--batch must be at least 1")
    t0 = time.perf_counter()
    with project.session() as s:
        todo = s.execute(select(Crop.id, Crop.path).where(Crop.phash.is_(None)).order_by(Crop.id)).all()
        total = s.query(Crop).count()
    root = project.crop_root
    hashed = missing = 0
    bar = tqdm(total=len(todo), unit="crop", desc="pHash", disable=not progress)
    for start in range(0, len(todo), batch):
        part = todo[start : start + batch]
        paths = [root / p for _, p in part]
        hashes, ok = phash_files_checked(paths, workers=workers, pool=len(todo) >= MIN_FILES_FOR_POOL)
        signed = to_signed(hashes)
        rows = [{"cid": cid, "ph": int(signed[i])} for i, (cid, _) in enumerate(part) if ok[i]]
        missing += int((~ok).sum())

        def write(session, rows=rows):
            if rows:
                session.execute(
                    update(CROPS).where(CROPS.c.id == bindparam("cid")).values(phash=bindparam("ph")),
                    rows,
                )

        project.run_write(write)
        hashed += len(rows)
        bar.update(len(part))
    bar.close()
    if missing:
        log.warning("%d crop file(s) missing or unreadable; their pHash stays empty", missing)
    return HashReport(hashed=hashed, already=total - len(todo), missing_files=missing, seconds=time.perf_counter() - t0)


@dataclass(frozen=True)
class GroupReport:
    threshold: int
    within_video: bool
    n_crops: int
    n_groups: int
    n_multi: int  # groups with more than one crop
    largest: int
    unhashed: int


def group_project(project, threshold: int = DEFAULT_THRESHOLD, within_video: bool = False) -> GroupReport:
    """Group crops by pHash and store each crop's group id (the smallest crop id in its group).

    Crops without a pHash get ``phash_group`` NULL. The threshold and mode are recorded in the
    ``phash_groups`` setting. All rows change in one transaction.
    """
    if not 0 <= int(threshold) <= 64:
        raise UserError(f"--threshold must be between 0 and 64 bits, got {threshold}")
    from portrait_builder.split.store import read_frame

    with project.session() as s:
        frame = read_frame(s, select(Crop.id, Crop.phash, Crop.video_id, Crop.phash_group).order_by(Crop.id),
                           ["id", "phash", "video_id", "phash_group"])
    ids = frame["id"].to_numpy(dtype=np.int64)
    has = frame["phash"].notna().to_numpy()
    unhashed = int((~has).sum())
    if unhashed == len(frame) and len(frame):
        raise UserError("no crop has a pHash yet; run `portrait hash PROJECT` first")
    hashes = to_unsigned(frame.loc[has, "phash"].to_numpy(dtype=np.int64))
    videos = frame.loc[has, "video_id"].to_numpy(dtype=np.int64)
    old_groups = pd.array(frame.loc[has, "phash_group"], dtype="Int64")
    hid = ids[has]
    first = group_hashes(hashes, threshold, keys=videos if within_video else None)
    group_ids = hid[first]  # smallest index in group -> smallest crop id (ids are sorted)
    sizes = np.bincount(np.searchsorted(hid, group_ids), minlength=len(hid)) if len(hid) else np.zeros(0, int)
    n_groups = int(len(np.unique(group_ids)))
    report = GroupReport(
        threshold=int(threshold),
        within_video=bool(within_video),
        n_crops=len(frame),
        n_groups=n_groups,
        n_multi=int((sizes > 1).sum()),
        largest=int(sizes.max()) if len(sizes) else 0,
        unhashed=unhashed,
    )
    # only rows whose group changes are written: regrouping at the same threshold is nearly free
    changed = np.asarray(old_groups.isna()) | (np.asarray(old_groups.fillna(-1), dtype=np.int64) != group_ids)
    params = [{"cid": int(c), "g": int(g)} for c, g in zip(hid[changed], group_ids[changed], strict=True)]

    def write(session):
        session.execute(update(CROPS).values(phash_group=None).where(CROPS.c.phash.is_(None)))
        for start in range(0, len(params), 20000):
            session.execute(
                update(CROPS).where(CROPS.c.id == bindparam("cid")).values(phash_group=bindparam("g")),
                params[start : start + 20000],
            )
        value = {"threshold": report.threshold, "within_video": report.within_video, "n_groups": n_groups}
        setting = session.get(Setting, GROUPS_SETTING)
        if setting is None:
            session.add(Setting(key=GROUPS_SETTING, value=value))
        else:
            setting.value = value

    project.run_write(write)
    return report

