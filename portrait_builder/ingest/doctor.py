"""Consistency of crop files and crop rows: orphans (files no row names) and missing files (rows whose
file is gone). Repair deletes orphans and re-cuts missing crops from their source video.

A SQLite project is single-workstation: its store, config and crops folder should be the owner's
only; doctor lists those others can read (projects made before init restricted them) and repair
restricts them."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from sqlalchemy import select

from portrait_builder.common import atomic_write_bytes, file_digest
from portrait_builder.ingest.crops import encode_jpeg, extract_crop
from portrait_builder.store import Crop, Project, Video
from portrait_builder.store.project import CONFIG_NAME, OWNER_ONLY_DIR, OWNER_ONLY_FILE

log = logging.getLogger(__name__)


def doctor(project: Project, repair: bool = False) -> dict:
    """Report (and with ``repair`` fix) the crop root against the crop rows.

    Returns ``{"orphans": [...], "temp_files": [...], "missing": [...], "removed": n, "restored": n,
    "unrepairable": [...], "readable_by_others": [...]}`` with paths relative to the crop root (the
    last: paths of a SQLite project that others may read; after a repair, the ones left).
    """
    root = project.crop_root
    with project.session() as s:
        rows = s.execute(select(Crop.id, Crop.video_id, Crop.frame_index, Crop.path, Crop.x1, Crop.y1, Crop.x2, Crop.y2)).all()
        videos = {v.id: (v.path, v.fingerprint) for v in s.scalars(select(Video))}
    known = {r.path for r in rows}
    on_disk = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
    rel = {p.relative_to(root).as_posix(): p for p in on_disk}
    temp = sorted(k for k in rel if k.endswith(".tmp"))
    orphans = sorted(k for k in rel if k not in known and not k.endswith(".tmp"))
    missing = [r for r in rows if r.path not in rel]
    report = {
        "crops": len(rows),
        "files": len(rel),
        "orphans": orphans,
        "temp_files": temp,
        "missing": sorted(r.path for r in missing),
        "removed": 0,
        "restored": 0,
        "unrepairable": [],
        "readable_by_others": _readable_by_others(project, repair),
    }
    if not repair:
        return report
    for k in orphans + temp:
        rel[k].unlink(missing_ok=True)
        report["removed"] += 1
    by_video: dict[int, list] = {}
    for r in missing:
        by_video.setdefault(r.video_id, []).append(r)
    for vid, items in by_video.items():
        restored = _recut(root, videos.get(vid), items)
        report["restored"] += len(restored)
        report["unrepairable"] += sorted(r.path for r in items if r.path not in restored)
    return report


def _recut(root: Path, video: tuple[str, str] | None, items: list) -> set[str]:
    """Decode the source video once and cut the missing crops again (same geometry as ingest)."""
    from portrait_builder.video import VideoReader, probe

    if video is None or not Path(video[0]).is_file():
        return set()
    src, fingerprint = video
    if file_digest(src) != fingerprint:
        log.warning("%s changed since it was ingested; cannot re-cut its crops", src)
        return set()
    sar = probe(src).sar  # crops keep true proportions on non-square pixels, as at ingest
    wanted: dict[int, list] = {}
    for r in items:
        wanted.setdefault(r.frame_index, []).append(r)
    done: set[str] = set()
    last = max(wanted)
    with VideoReader(src, start=min(wanted)) as reader:
        for frame in reader:
            for r in wanted.get(frame.index, ()):
                target = root / r.path
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(target, encode_jpeg(extract_crop(frame.image, (r.x1, r.y1, r.x2, r.y2), sar)))
                done.add(r.path)
            if frame.index >= last:
                break
    return done


def _readable_by_others(project: Project, repair: bool) -> list[str]:
    """Paths of a SQLite project that group or others may read; with ``repair``, made owner-only first."""
    if not project.is_sqlite:
        return []  # a team store's crops folder is shared on purpose (docs/team.md)
    root = project.root
    # not the project folder itself: it may be a folder of the user's that existed before `portrait init`
    paths = [(project.crop_root, OWNER_ONLY_DIR), (root / CONFIG_NAME, OWNER_ONLY_FILE)]
    paths += [(p, OWNER_ONLY_FILE) for p in root.glob("store.sqlite*")]
    found = []
    for path, mode in paths:
        if not path.exists() or not stat.S_IMODE(path.stat().st_mode) & 0o077:
            continue
        if repair:
            path.chmod(mode)
            log.info("%s: now readable by its owner only", path)
            continue
        log.warning("%s can be read by other users of this machine; `portrait doctor --repair` restricts it", path)
        found.append(str(path))
    return found
