"""Builders of the characters tests: a hand-built movie in the store, tracks whose crops are plain
figures in one clothes colour, with stored face embeddings (no detector, no dlib), so clustering and
candidates are tested on both backends in milliseconds."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class FakeTrack:
    tracker_id: int
    shot: int
    frames: list[int]
    clothes: tuple[int, int, int]  # BGR colour of the figure's body in its crops
    face: np.ndarray | None = None  # (128,) face descriptor stored in crops.face_embedding
    ids: list[int] = field(default_factory=list)


def unit(v) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def figure(clothes: tuple[int, int, int]) -> np.ndarray:
    """A 256x128 crop: grey background, a skin-coloured head, a body in ``clothes``."""
    img = np.full((256, 128, 3), 128, np.uint8)
    cv2.ellipse(img, (64, 30), (14, 18), 0, 0, 360, (120, 160, 210), -1)
    cv2.rectangle(img, (34, 50), (94, 250), clothes, -1)
    return img


def add_movie(project, tracks: list[FakeTrack], title: str = "movie") -> tuple[int, dict[int, int]]:
    """Store one movie with ``tracks`` (one crop per listed frame, written under the crop root); returns
    (video id, tracker id -> track id)."""
    from portrait_builder.store import Crop, Track, Video

    for t in tracks:
        for f in t.frames:
            path = project.crop_root / title / f"f{f}_t{t.tracker_id}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), figure(t.clothes))

    def tx(s):
        video = Video(path=f"/films/{title}.mp4", fingerprint=f"fp-{title}", title=title, status="done",
                      report={"video": {"sar": 1.0}})
        s.add(video)
        s.flush()
        ids = {}
        for t in tracks:
            row = Track(video_id=video.id, tracker_id=t.tracker_id, first_frame=min(t.frames),
                        last_frame=max(t.frames), shot_index=t.shot)
            s.add(row)
            s.flush()
            ids[t.tracker_id] = row.id
            for f in t.frames:
                face = t.face is not None
                s.add(Crop(video_id=video.id, track_id=row.id, frame_index=f, x1=0, y1=0, x2=50, y2=100,
                           path=f"{title}/f{f}_t{t.tracker_id}.jpg", shot_index=t.shot,
                           embedding=b"", face_visible=face,
                           face_x1=10 if face else None, face_y1=5 if face else None,
                           face_x2=30 if face else None, face_y2=25 if face else None,
                           face_embedding=np.asarray(t.face, "<f2").tobytes() if face else None))
        return video.id, ids

    return project.run_write(tx)
