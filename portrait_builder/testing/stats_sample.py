"""A small labelled project with real JPEG crops, for tests, benchmarks and examples.

Tracks hold near-duplicate crops (one base image, slightly jittered per frame), so pHash groups form
the way they do in a movie; identities are scoped to their video as in the store; about 60% of the
tracks have no identity (the paper's semi-supervised ID). Base images are cut from real frames when a
folder of JPEGs is given (for example ``../shared/data``), else rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

CROP_W, CROP_H = 128, 256


@dataclass(frozen=True)
class SampleSpec:
    videos: int = 3
    identities_per_video: int = 4
    tracks_per_identity: int = 3
    unidentified_tracks_per_video: int = 6
    crops_per_track: int = 4
    seed: int = 0


def _source_frames(source: Path | None) -> list[Path]:
    if source is None or not Path(source).is_dir():
        return []
    frames = sorted(Path(source).glob("**/*.jpg"))
    # big frames give many distinct crops; small crops are used whole
    return frames[:200]


def _base_images(n: int, rng: np.random.Generator, source: Path | None) -> list[np.ndarray]:
    from PIL import Image

    frames = _source_frames(source)
    out = []
    for i in range(n):
        if frames:
            with Image.open(frames[i % len(frames)]) as im:
                im = im.convert("RGB")
                w, h = im.size
                cw = int(rng.integers(max(8, w // 8), max(9, w // 2)))
                ch = min(h, int(cw * rng.uniform(1.8, 2.6)))
                x = int(rng.integers(0, max(1, w - cw)))
                y = int(rng.integers(0, max(1, h - ch)))
                crop = im.crop((x, y, x + cw, y + ch)).resize((CROP_W, CROP_H), Image.Resampling.BILINEAR)
                out.append(np.asarray(crop))
        else:
            # rendered: smooth random blobs so that pHashes differ between bases
            yy, xx = np.mgrid[0:CROP_H, 0:CROP_W]
            img = np.zeros((CROP_H, CROP_W, 3), dtype=np.float64)
            for _ in range(6):
                cy, cx = rng.uniform(0, CROP_H), rng.uniform(0, CROP_W)
                r = rng.uniform(15, 60)
                colour = rng.uniform(0, 255, 3)
                mask = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
                img += mask[..., None] * colour
            out.append(np.clip(img / img.max() * 255 if img.max() > 0 else img, 0, 255).astype(np.uint8))
    return out


def build_sample_project(project, spec: SampleSpec = SampleSpec(), source: str | Path | None = None) -> dict:
    """Fill an empty project with videos, tracks, crops (JPEG files) and labels. Returns a summary dict
    with ``crop_ids``, ``identity_of`` (crop id -> identity id or None) and ``track_of`` (crop id -> track)."""
    from PIL import Image

    from portrait_builder.store import Crop, Identity, Track, Video, add_label

    rng = np.random.default_rng(spec.seed)
    tax = project.taxonomy
    tracks_per_video = spec.identities_per_video * spec.tracks_per_identity + spec.unidentified_tracks_per_video
    bases = _base_images(spec.videos * tracks_per_video, rng, Path(source) if source else None)
    crop_root = project.crop_root
    identity_of: dict[int, int | None] = {}
    track_of: dict[int, int] = {}
    crop_ids: list[int] = []
    attrs = [a for a in tax.attributes if a.kind != "identity"]
    with project.write() as s:
        b = 0
        for v in range(spec.videos):
            video = Video(path=f"/movies/m{v}.mp4", fingerprint=f"{spec.seed:08x}{v:056x}", title=f"movie {v}",
                          fps=25.0, frame_count=10_000, width=1920, height=1080, status="done")
            s.add(video)
            s.flush()
            idents = []
            for i in range(spec.identities_per_video):
                ident = Identity(video_id=video.id, name=f"char{v}_{i}", gender=str(rng.choice(["male", "female"])))
                s.add(ident)
                s.flush()
                idents.append(ident.id)
            owners = [idents[i // spec.tracks_per_identity] for i in range(spec.identities_per_video * spec.tracks_per_identity)]
            owners += [None] * spec.unidentified_tracks_per_video
            for t, owner in enumerate(owners):
                first = t * 100
                track = Track(video_id=video.id, tracker_id=t + 1, first_frame=first,
                              last_frame=first + 5 * (spec.crops_per_track - 1))
                s.add(track)
                s.flush()
                base = bases[b].astype(np.int16)
                b += 1
                for c in range(spec.crops_per_track):
                    frame = first + 5 * c
                    jitter = rng.integers(-2, 3, size=base.shape)
                    img = np.clip(base + jitter, 0, 255).astype(np.uint8)
                    rel = f"v{video.id}/t{track.id}/{frame:06d}.jpg"
                    path = crop_root / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(img).save(path, quality=90)
                    crop = Crop(video_id=video.id, track_id=track.id, frame_index=frame, timestamp=frame / 25.0,
                                x1=10.0, y1=20.0, x2=74.0, y2=148.0, score=0.9, blur=100.0, path=rel)
                    s.add(crop)
                    s.flush()
                    crop_ids.append(crop.id)
                    track_of[crop.id] = track.id
                    identity_of[crop.id] = owner
                    add_label(s, tax, crop.id, "identity", owner if owner is not None else
                              str(rng.choice(["unknown", "unsure"])), source="synthetic")
                    for attr in attrs:
                        if rng.random() < 0.1:
                            continue  # unlabelled
                        if attr.multilabel:
                            k = int(rng.integers(1, 3))
                            value = list(rng.choice(list(attr.classes), size=k, replace=False))
                        else:
                            # skewed: a long tail over the classes, plus some "unsure"
                            p = np.array([0.6 ** i for i in range(len(attr.value_names))])
                            value = str(rng.choice(list(attr.value_names), p=p / p.sum()))
                        add_label(s, tax, crop.id, attr.name, value, source="synthetic")
    return {"crop_ids": crop_ids, "identity_of": identity_of, "track_of": track_of}
