"""Export a project's tracked boxes as JDE training data (``portrait export-mot``).

Layout (what :mod:`portrait_builder.detect.jde.train` reads): ``OUT/images/<video>/NNNNNN.jpg`` (the source
frame, decoded from the video), ``OUT/labels_with_ids/<video>/NNNNNN.txt`` with one
``0 identity xc yc w h`` line per crop (normalised by the frame size), and ``OUT/<name>.train`` listing the
images. Identities are the project's tracks, numbered 0..N-1 over the export. Only frames that have crops
are exported (the ingest crops every few frames); NNNNNN is the 1-based frame number, as in MOTChallenge.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
from tqdm import tqdm

from portrait_builder.common import atomic_write_bytes
from portrait_builder.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CropBox:
    """One exported box: plain values, no ORM object leaves this module."""

    video_id: int
    frame_index: int
    track_id: int
    x1: float
    y1: float
    x2: float
    y2: float


def label_lines(boxes: list[tuple[int, float, float, float, float]], width: int, height: int) -> list[str]:
    """``(identity, x1, y1, x2, y2)`` in pixels -> JDE label lines ``0 identity xc yc w h`` (normalised).
    Boxes are clipped to the frame first; boxes with no area left are skipped."""
    lines = []
    for ident, x1, y1, x2, y2 in boxes:
        x1, x2 = max(0.0, min(x1, width)), max(0.0, min(x2, width))
        y1, y2 = max(0.0, min(y1, height)), max(0.0, min(y2, height))
        if x2 <= x1 or y2 <= y1:
            continue
        lines.append(
            f"0 {ident} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
        )
    return lines


def _video_dir_name(video_id: int, title: str | None) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in (title or "video"))[:60]
    return f"{video_id:04d}_{safe}"


def export_mot(project_root: str | Path, out: str | Path, *, name: str = "portrait", jpeg_quality: int = 95,
               video_ids: list[int] | None = None) -> dict:
    """Write the project's crops (boxes) and tracks (identities) in JDE's layout under ``out``.

    Resumable: frames whose label file already exists are skipped (files are written atomically).
    Returns a summary: videos, frames, boxes, identities, list file.
    """
    from sqlalchemy import select

    from portrait_builder.store import Crop, Project, Video
    from portrait_builder.video import VideoReader

    project = Project.open(project_root)
    out = Path(out)
    try:
        with project.session() as s:
            q = select(Video.id, Video.path, Video.title, Video.width, Video.height)
            if video_ids:
                q = q.where(Video.id.in_(video_ids))
            videos = [tuple(r) for r in s.execute(q.order_by(Video.id))]
            crops = [
                CropBox(*r)
                for r in s.execute(
                    select(Crop.video_id, Crop.frame_index, Crop.track_id, Crop.x1, Crop.y1, Crop.x2, Crop.y2).order_by(
                        Crop.video_id, Crop.frame_index, Crop.track_id
                    )
                )
            ]
    finally:
        project.close()
    if not crops:
        raise UserError(f"{project_root} has no crops to export (ingest a video first)")
    identity = {t: i for i, t in enumerate(sorted({c.track_id for c in crops}))}
    by_video: dict[int, dict[int, list[CropBox]]] = defaultdict(lambda: defaultdict(list))
    for c in crops:
        by_video[c.video_id][c.frame_index].append(c)

    list_lines: list[str] = []
    n_boxes = n_frames = 0
    for vid, vpath, title, _, _ in videos:
        frames = by_video.get(vid)
        if not frames:
            continue
        src = Path(vpath)
        if not src.is_absolute():
            src = Path(project_root) / src
        if not src.is_file():
            raise UserError(f"video {vid} ({title}) is not at {src}; export needs the source video to decode its frames")
        sub = _video_dir_name(vid, title)
        (out / "images" / sub).mkdir(parents=True, exist_ok=True)
        (out / "labels_with_ids" / sub).mkdir(parents=True, exist_ok=True)
        wanted = set(frames)
        todo = {f for f in wanted if not (out / "labels_with_ids" / sub / f"{f + 1:06d}.txt").is_file()}
        last = max(todo) if todo else -1
        with VideoReader(src) as reader, tqdm(total=len(todo), desc=f"export {title}", unit="frame", disable=None) as bar:
            for frame in reader if todo else ():
                if frame.index > last:
                    break
                if frame.index not in todo:
                    continue
                h, w = frame.image.shape[:2]
                stem = f"{frame.index + 1:06d}"
                ok, jpg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                if not ok:
                    raise UserError(f"cannot encode frame {frame.index} of {src}")
                atomic_write_bytes(out / "images" / sub / f"{stem}.jpg", jpg.tobytes())
                boxes = [(identity[c.track_id], c.x1, c.y1, c.x2, c.y2) for c in frames[frame.index]]
                # the label file is written last: its presence marks the frame done (resume)
                atomic_write_bytes(out / "labels_with_ids" / sub / f"{stem}.txt", ("\n".join(label_lines(boxes, w, h)) + "\n").encode())
                bar.update(1)
            if reader.error:
                log.warning("%s: %s", src, reader.error)
        missing = sorted(f for f in wanted if not (out / "labels_with_ids" / sub / f"{f + 1:06d}.txt").is_file())
        if missing:
            raise UserError(f"{src}: {len(missing)} frames with crops could not be decoded (first: {missing[0]})")
        for f in sorted(wanted):
            list_lines.append(f"images/{sub}/{f + 1:06d}.jpg")
        n_frames += len(wanted)
        n_boxes += sum(len(v) for v in frames.values())
    listfile = out / f"{name}.train"
    atomic_write_bytes(listfile, ("\n".join(list_lines) + "\n").encode())
    return {"videos": len([v for v in videos if v[0] in by_video]), "frames": n_frames, "boxes": n_boxes,
            "identities": len(identity), "list": str(listfile)}
