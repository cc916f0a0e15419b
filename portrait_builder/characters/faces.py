"""Face embeddings: dlib's 128-d ResNet descriptor of the face in each crop, stored as float16 bytes.

The weights ship inside ``face-recognition-models`` (installed by ``make weights``) and run on
``dlib-bin``: no download. dlib takes a few hundred ms per face on this project's CPUs, far above the
ingest's real-time budget, so this is a separate pass over the crops that have a visible face and no
embedding yet: resumable (committed in batches), parallel over the available CPUs.

The face is described from the stored 256x128 crop (its face box mapped into crop pixels), not from a
re-decoded frame: on the development clip both give the same separation (same person 0.33-0.59 vs
different people 0.55-0.73 from crops; 0.35-0.58 vs 0.55-0.71 from full frames) and the crops need no
video file and no decoding.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np

from portrait_builder.characters.geometry import face_box_in_crop
from portrait_builder.characters.store import FaceJob, missing_face_jobs, write_face_embeddings
from portrait_builder.errors import UserError
from portrait_builder.store import Project
from portrait_builder.weights import weight_file

log = logging.getLogger(__name__)

FACE_PACKAGE = "face-recognition-models"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_DIM = 128
#: dlib's own padding around the aligned face chip (its default).
CHIP_PADDING = 0.25


class FaceEmbedder:
    """dlib's 5-point aligner and 128-d face descriptor (loaded once; ~31 MB)."""

    def __init__(self):
        try:
            import dlib
        except ImportError:  # pragma: no cover - dlib-bin is a dependency
            raise UserError("face embeddings need dlib: pip install dlib-bin") from None
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(weight_file(FACE_PACKAGE, LANDMARKS_FILE)))
        self._descriptor = dlib.face_recognition_model_v1(str(weight_file(FACE_PACKAGE, DESCRIPTOR_FILE)))

    def embed(self, image_bgr: np.ndarray, face_xyxy: Sequence[float]) -> np.ndarray:
        """(128,) float32 descriptor of the face inside ``face_xyxy`` (pixels of ``image_bgr``).

        Raw dlib scale (norms about 1.4): dlib's rule of thumb, same person below 0.6 euclidean, holds on it.
        """
        h, w = image_bgr.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in face_xyxy)
        rect = self._dlib.rectangle(int(round(max(x1, 0))), int(round(max(y1, 0))),
                                    int(round(min(x2, w - 1))), int(round(min(y2, h - 1))))
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        shape = self._landmarks(rgb, rect)
        return np.asarray(self._descriptor.compute_face_descriptor(rgb, shape, 0, CHIP_PADDING), np.float32)


_WORKER: FaceEmbedder | None = None


def _worker_init() -> None:
    global _WORKER
    _WORKER = FaceEmbedder()


def _embed_jobs(root: str, jobs: list[FaceJob], embedder: FaceEmbedder | None = None) -> list[tuple[int, bytes | None]]:
    """Descriptors of a batch as float16 bytes; None for a crop whose file cannot be read."""
    embedder = embedder or _WORKER
    out = []
    for job in jobs:
        image = cv2.imread(f"{root}/{job.path}", cv2.IMREAD_COLOR)
        if image is None:
            log.warning("crop %d: cannot read %s; no face embedding", job.crop_id, job.path)
            out.append((job.crop_id, None))
            continue
        d = embedder.embed(image, face_box_in_crop(job.box, job.face, job.sar))
        out.append((job.crop_id, d.astype("<f2").tobytes()))
    return out


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def embed_faces(project: Project, video_ids: Iterable[int] | None = None, *, workers: int | None = None,
                batch_size: int = 32, progress: bool = True) -> int:
    """Compute and store the face embedding of every crop that has a visible face and none yet.

    Each batch of ``batch_size`` crops is one transaction, so an interrupted run keeps what it committed
    and the next run continues. ``workers``: processes (None: the available CPUs; 1: in this process).
    Returns the number of embeddings stored.
    """
    from tqdm import tqdm

    from portrait_builder.cpus import available_cpus

    jobs = missing_face_jobs(project, video_ids)
    if not jobs:
        return 0
    root = str(project.check_crop_root())
    weight_file(FACE_PACKAGE, DESCRIPTOR_FILE), weight_file(FACE_PACKAGE, LANDMARKS_FILE)  # one line if missing
    workers = max(1, min(workers or available_cpus(), -(-len(jobs) // batch_size)))
    batches = list(_chunks(jobs, batch_size))
    stored = 0
    with tqdm(total=len(jobs), desc="face embeddings", unit="face", disable=not progress) as bar:
        if workers == 1:
            embedder = FaceEmbedder()
            results = (_embed_jobs(root, b, embedder) for b in batches)
            stored = _store_all(project, results, bar)
        else:
            # spawn: the parent may hold torch / ffmpeg threads that a fork would copy half-way.
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
                results = pool.map(_embed_jobs, [root] * len(batches), batches)
                stored = _store_all(project, results, bar)
    log.info("stored %d face embeddings with %d worker(s)", stored, workers)
    return stored


def _store_all(project: Project, results: Iterable[list[tuple[int, bytes | None]]], bar) -> int:
    stored = 0
    for batch in results:
        values = [(cid, blob) for cid, blob in batch if blob is not None]
        write_face_embeddings(project, values)
        stored += len(values)
        bar.update(len(batch))
    return stored
