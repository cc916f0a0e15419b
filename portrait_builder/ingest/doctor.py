"""Consistency of crop files and crop rows: orphans (files no row names) and missing files (rows whose
file is gone). Repair deletes orphans and re-cuts missing crops from their source video."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select

from portrait_builder.ingest.crops import encode_jpeg, extract_crop
from portrait_builder.store import Crop, Project, Video

log = logging.getLogger(__name__)


def doctor(project: Project, repair: bool = False) -> dict:
    """Report (and with ``repair`` fix) the crop root against the crop rows.

    Returns ``{"orphans": [...], "temp_files": [...], "missing": [...], "removed": n, "restored": n,
    "unrepairable": [...]}`` with paths relative to the crop root.
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
    from portrait_builder.ingest.pipeline import file_fingerprint
    from portrait_builder.video import VideoReader

    if video is None or not Path(video[0]).is_file():
        return set()
    src, fingerprint = video
    if file_fingerprint(src) != fingerprint:
        log.warning("%s changed since it was ingested; cannot re-cut its crops", src)
        return set()
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
                tmp = target.with_name(target.name + ".tmp")
                tmp.write_bytes(encode_jpeg(extract_crop(frame.image, (r.x1, r.y1, r.x2, r.y2))))
                tmp.replace(target)
                done.add(r.path)
            if frame.index >= last:
                break
    return done
