"""Sample projects for the annotation app's tests, screenshots and benchmarks (no ingest needed).

Crops are real 256x128 JPEGs: cut from MOT17 frames by their ground-truth boxes when a MOT
sequence folder is given (one track per ground-truth person), else rendered figures (distinct
shirt/trouser colours per track). Embeddings are colour histograms stored as float16 bytes, so
"most similar exemplar first" orders by something visible.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from sqlalchemy import select

from portrait_builder.store.models import Candidate, Crop, Track, Video
from portrait_builder.store.project import Project

CROP_SIZE = (128, 256)  # PIL (width, height): the paper's 256x128 crops


@dataclass(frozen=True)
class SampleTrack:
    tracker_id: int
    frames: tuple[int, ...]
    images: tuple[Image.Image, ...]
    boxes: tuple[tuple[float, float, float, float], ...]


def color_embedding(image: Image.Image) -> bytes:
    """A 2x(4x4x4) RGB histogram of the upper and lower halves, L2-normalised, float16 bytes."""
    arr = np.asarray(image.convert("RGB").resize((32, 64)), dtype=np.uint8) // 64
    parts = []
    for half in (arr[:32], arr[32:]):
        codes = (half[..., 0].astype(np.int64) * 16 + half[..., 1] * 4 + half[..., 2]).ravel()
        parts.append(np.bincount(codes, minlength=64).astype(np.float32))
    vec = np.concatenate(parts)
    vec /= max(float(np.linalg.norm(vec)), 1e-6)
    return vec.astype("<f2").tobytes()


def mot_tracks(seq_dir: str | Path, *, max_tracks: int = 8, min_height: float = 120.0) -> list[SampleTrack]:
    """Tracks of real person crops from a MOTChallenge sequence folder (img1/ + gt/gt.txt).

    Keeps pedestrians (class 1, flag 1) with visibility > 0.5 and box height >= ``min_height`` in the
    frames present in img1/; MOT frame f is img1/{f:06d}.jpg.
    """
    seq_dir = Path(seq_dir)
    frames = {int(p.stem): p for p in (seq_dir / "img1").glob("*.jpg")}
    gt = np.loadtxt(seq_dir / "gt" / "gt.txt", delimiter=",", ndmin=2)
    keep = (gt[:, 6] == 1) & (gt[:, 7] == 1) & (gt[:, 8] > 0.5) & (gt[:, 5] >= min_height)
    keep &= np.isin(gt[:, 0].astype(int), list(frames))
    gt = gt[keep]
    by_track: dict[int, list[np.ndarray]] = {}
    for row in gt:
        by_track.setdefault(int(row[1]), []).append(row)
    chosen = sorted(by_track, key=lambda t: (-len(by_track[t]), t))[:max_tracks]
    cache: dict[int, Image.Image] = {}
    out = []
    for tid in sorted(chosen):
        rows = sorted(by_track[tid], key=lambda r: r[0])
        imgs, fidx, boxes = [], [], []
        for r in rows:
            f = int(r[0])
            frame = cache.get(f) or cache.setdefault(f, Image.open(frames[f]).convert("RGB"))
            x1, y1, w, h = (float(v) for v in r[2:6])
            box = (max(x1, 0.0), max(y1, 0.0), min(x1 + w, frame.width), min(y1 + h, frame.height))
            imgs.append(frame.crop(tuple(int(round(v)) for v in box)).resize(CROP_SIZE, Image.Resampling.BILINEAR))
            fidx.append(f - 1)  # MOT frame f is video frame index f - 1
            boxes.append(box)
        out.append(SampleTrack(tid, tuple(fidx), tuple(imgs), tuple(boxes)))
    return out


def rendered_tracks(n_tracks: int = 4, crops_per_track: int = 5, *, seed: int = 0) -> list[SampleTrack]:
    """Rendered figures (head, shirt, trousers) with a per-track palette and a little motion."""
    rng = random.Random(seed)
    out = []
    for t in range(n_tracks):
        shirt = tuple(rng.randrange(40, 230) for _ in range(3))
        trousers = tuple(rng.randrange(20, 160) for _ in range(3))
        bg = tuple(rng.randrange(150, 240) for _ in range(3))
        imgs, boxes = [], []
        for k in range(crops_per_track):
            img = Image.new("RGB", CROP_SIZE, bg)
            d = ImageDraw.Draw(img)
            dx = (k % 3) - 1
            d.ellipse((48 + dx, 12, 80 + dx, 48), fill=(224, 180, 150))
            d.rectangle((36 + dx, 50, 92 + dx, 140), fill=shirt)
            d.rectangle((40 + dx, 140, 62 + dx, 240), fill=trousers)
            d.rectangle((66 + dx, 140, 88 + dx, 240), fill=trousers)
            imgs.append(img)
            x = 100.0 + 40 * t + 3 * k
            boxes.append((x, 50.0, x + 60.0, 170.0))
        out.append(SampleTrack(t + 1, tuple(range(0, 5 * crops_per_track, 5)), tuple(imgs), tuple(boxes)))
    return out


def add_video(project: Project, title: str, tracks: Iterable[SampleTrack], *, embeddings: bool = True) -> list[int]:
    """Insert a video, its tracks and crops (writing the JPEGs); returns the crop ids in insert order."""
    tracks = list(tracks)
    crop_ids: list[int] = []

    def tx(s):
        video = Video(path=f"{title}.mp4", fingerprint=f"sample-{title}", title=title, fps=25.0, status="done")
        s.add(video)
        s.flush()
        for tr in tracks:
            track = Track(video_id=video.id, tracker_id=tr.tracker_id, first_frame=min(tr.frames), last_frame=max(tr.frames))
            s.add(track)
            s.flush()
            for frame, img, box in zip(tr.frames, tr.images, tr.boxes, strict=True):
                rel = f"{title}/t{tr.tracker_id:04d}/f{frame:06d}.jpg"
                dest = project.crop_root / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                img.save(dest, "JPEG", quality=90)
                crop = Crop(
                    video_id=video.id, track_id=track.id, frame_index=frame, timestamp=frame / 25.0,
                    x1=box[0], y1=box[1], x2=box[2], y2=box[3], score=0.9, path=rel,
                    embedding=color_embedding(img) if embeddings else None,
                )
                s.add(crop)
                s.flush()
                crop_ids.append(crop.id)

    project.run_write(tx)
    return crop_ids


def populate_sample(project: Project, mot_dirs: Iterable[str | Path] = (), *, max_tracks: int = 6,
                    rendered_videos: int = 2, seed: int = 0) -> list[int]:
    """One video per MOT sequence folder that exists; rendered videos when none does. Returns crop ids."""
    ids: list[int] = []
    for d in mot_dirs:
        d = Path(d)
        if (d / "gt" / "gt.txt").is_file():
            ids += add_video(project, d.name, mot_tracks(d, max_tracks=max_tracks))
    if not ids:
        for v in range(rendered_videos):
            ids += add_video(project, f"rendered{v + 1}", rendered_tracks(max_tracks, 5, seed=seed + v))
    return ids


def crops_by_track(project: Project, video_id: int | None = None) -> dict[int, list[int]]:
    """{track id: [its crop ids in frame order]} of the movie ``video_id`` (every movie's for None),
    tracks in id order."""
    query = select(Crop.track_id, Crop.id).order_by(Crop.track_id, Crop.frame_index)
    if video_id is not None:
        query = query.where(Crop.video_id == video_id)
    with project.session() as s:
        rows = s.execute(query).all()
    out: dict[int, list[int]] = {}
    for track_id, crop_id in rows:
        out.setdefault(track_id, []).append(crop_id)
    return out


def make_candidate(project: Project, track_ids: Sequence[int]) -> int:
    """A candidate character made of these tracks of one movie, as ``portrait characters`` stores one;
    returns its id."""

    def tx(s) -> int:
        cand = Candidate(video_id=s.scalar(select(Track.video_id).where(Track.id == track_ids[0])))
        s.add(cand)
        s.flush()
        for t in track_ids:
            s.get(Track, t).candidate_id = cand.id
        return cand.id

    return project.run_write(tx)
