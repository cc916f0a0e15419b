"""Film ingest: letterbox and non-square pixels, shot cuts at frame accuracy with a stride, face fields,
pHash at write. Real ffmpeg, the real HOG detector, a real store.

References: the synthetic clip's own ground truth (cut frames), the same clip ingested without bars /
with square pixels (boxes and crops must agree), imagehash.phash on the written files.
"""

from __future__ import annotations

import subprocess
import threading

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from portrait_builder.detect import Detections, create_detector
from portrait_builder.ingest import IngestConfig, extract_crop, ingest_video
from portrait_builder.ingest import pipeline as pipeline_module
from portrait_builder.ingest.pipeline import create_shots as _create_shots
from portrait_builder.store import Crop, Project, Track
from portrait_builder.synth import SynthConfig, render_video
from portrait_builder.video import detect_picture_area, ffmpeg_exe, probe

CUTS = (23, 41)
# Geometry tests: HOG (deterministic, fast on these figures) and the histogram shot detector (instant,
# no torch), which finds both cuts of this clip. The default detector runs on real film below.
BASE = IngestConfig(detector="hog", track_stride=2, crop_every=2, min_height=40, commit_every=10,
                    shot_detector="histogram")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The synthetic clip, the same pixels letterboxed (40 px bars) and anamorphic (half width, SAR 2),
    both re-encoded losslessly so the picture pixels are the decoded original's."""
    folder = tmp_path_factory.mktemp("film")
    src = folder / "clip.mp4"
    gt = render_video(src, SynthConfig(num_frames=60, shot_starts=CUTS, seed=3))
    out = {"clip": src}
    for name, vf in (("letterbox", "pad=480:400:0:40:black"), ("anamorphic", "scale=240:320:flags=area,setsar=2")):
        out[name] = folder / f"{name}.mkv"
        subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(src), "-vf", vf, "-c:v", "libx264",
                        "-qp", "0", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out[name])], check=True, timeout=120)
    return out, gt


def _crops(project: Project) -> dict:
    with project.session() as s:
        rows = s.execute(select(Crop, Track).join(Track, Crop.track_id == Track.id)).all()
    return {(c.frame_index, t.tracker_id): (c, t) for c, t in rows}


def _ingest(tmp_path, name, path, config=BASE, detector=None):
    project = Project.init(tmp_path / name)
    report = ingest_video(project, path, config, progress=False, detector=detector)
    assert report.status == "done" and report.error is None
    return project, report


def test_letterbox_found_and_boxes_in_source_pixels(clips, tmp_path):
    paths, _ = clips
    info = probe(paths["letterbox"])
    area = detect_picture_area(paths["letterbox"], info)
    assert (area.x, area.y, area.width, area.height) == (0, 40, 480, 320)
    ref_project, ref = _ingest(tmp_path, "ref", paths["clip"])
    lb_project, lb = _ingest(tmp_path, "lb", paths["letterbox"])
    assert lb.picture_area == (0, 40, 480, 320) and ref.picture_area == (0, 0, 480, 320)
    assert lb.working_size == ref.working_size == (480, 320)  # the bars are not in the working frame
    a, b = _crops(ref_project), _crops(lb_project)
    assert set(a) == set(b) and len(a) > 10  # the detector saw the same pictures
    for key, (c, _) in a.items():
        d = b[key][0]
        np.testing.assert_allclose([d.x1, d.y1 - 40, d.x2, d.y2 - 40], [c.x1, c.y1, c.x2, c.y2], atol=1e-3)
        ia, ib = (cv2.imread(str(p.crop_root / r.path)).astype(int) for p, r in ((ref_project, c), (lb_project, d)))
        assert np.abs(ia - ib).mean() < 3  # same picture, bars and padding both black


def test_non_square_pixels_keep_true_proportions(clips, tmp_path):
    paths, _ = clips
    info = probe(paths["anamorphic"])
    assert (info.width, info.height, info.sar) == (240, 320, 2.0)
    ref_project, _ = _ingest(tmp_path, "ref", paths["clip"])
    ana_project, ana = _ingest(tmp_path, "ana", paths["anamorphic"])
    assert ana.working_size == (480, 320) and ana.video.sar == 2.0  # detection on square pixels
    a, b = _crops(ref_project), _crops(ana_project)
    common = sorted(set(a) & set(b))
    assert len(common) >= 0.7 * len(a) > 5
    frames = _frames(paths["anamorphic"], {k[0] for k in common})
    diffs, squashed = [], []
    for key in common:
        c, d = a[key][0], b[key][0]
        # stored in the anamorphic file's own pixel grid: x halved
        box = np.array([d.x1 * 2, d.y1, d.x2 * 2, d.y2])
        ref = np.array([c.x1, c.y1, c.x2, c.y2])
        lo, hi = np.maximum(box[:2], ref[:2]), np.minimum(box[2:], ref[2:])
        inter = np.prod(np.clip(hi - lo, 0, None))
        iou = inter / (np.prod(box[2:] - box[:2]) + np.prod(ref[2:] - ref[:2]) - inter)
        assert iou > 0.6, (key, box, ref)
        ia = cv2.imread(str(ref_project.crop_root / c.path)).astype(int)
        ib = cv2.imread(str(ana_project.crop_root / d.path)).astype(int)
        diffs.append(np.abs(ia - ib).mean())
        # the same box cut as if pixels were square: the person comes out twice as thin
        frame = frames[d.frame_index]
        squashed.append(np.abs(ia - extract_crop(frame, (d.x1, d.y1, d.x2, d.y2), 1.0).astype(int)).mean())
    assert np.median(diffs) < 12 and np.median(squashed) > 2 * np.median(diffs), (np.median(diffs), np.median(squashed))


def _frames(path, wanted: set[int]) -> dict:
    from portrait_builder.video import VideoReader

    with VideoReader(path) as reader:
        return {f.index: f.image.copy() for f in reader if f.index in wanted}


def test_shot_cuts_at_frame_accuracy_with_stride(tmp_path):
    """The default shot detector inside ingest, stride 3: the report's cuts are the ground truth's and the
    detector's own on every frame (``detect_shot_cuts``), although no cut is a processed frame."""
    from portrait_builder.track import detect_shot_cuts

    cuts = (23, 41, 80)
    path = tmp_path / "cuts.mp4"
    gt = render_video(path, SynthConfig(num_frames=120, shot_starts=cuts, seed=3))
    assert gt.cuts == list(cuts) == detect_shot_cuts(path)
    project, report = _ingest(tmp_path, "cuts", path, IngestConfig(detector="hog", track_stride=3, crop_every=2,
                                                                   min_height=40))
    assert report.shot_cuts == cuts and report.shots == 4
    crops = _crops(project)
    assert crops
    with project.session() as s:
        tracks = s.scalars(select(Track)).all()
    for t in tracks:  # the tracker reset at every cut: no track spans one
        assert not any(t.first_frame < c <= t.last_frame for c in cuts), (t.first_frame, t.last_frame)
        assert t.shot_index == sum(c <= t.first_frame for c in cuts)
    for c, _ in crops.values():
        assert c.shot_index == sum(cut <= c.frame_index for cut in cuts)
        assert c.frame_index % 6 == 0  # the crop schedule: every 2nd processed frame of stride 3


class _HeadFaces:
    """HOG plus a face box on every other detection (the top sixth of its box, in the detector's frame
    pixels): the face detector's output format, to check where the pipeline maps and stores it."""

    def __init__(self):
        self.inner = create_detector("hog")
        self.name, self.fingerprint, self.batch_size = "hog-faces", self.inner.fingerprint, 1
        self.embedding_dim = self.inner.embedding_dim

    def detect(self, frames):
        out = []
        for d in self.inner.detect(frames):
            b = d.xyxy
            faces = np.stack([b[:, 0], b[:, 1], b[:, 2], b[:, 1] + (b[:, 3] - b[:, 1]) / 6], axis=1) if len(b) else np.zeros((0, 4))
            faces[1::2] = np.nan
            out.append(Detections(b, d.scores, d.embeddings, None, faces))
        return out


def test_face_fields_sharpness_and_phash_stored(clips, tmp_path, project):
    """On SQLite and PostgreSQL (the ``project`` fixture)."""
    imagehash = pytest.importorskip("imagehash")
    from PIL import Image

    from portrait_builder.dedup.phash import hex_to_hash, to_signed
    from portrait_builder.dedup.store import hash_project

    paths, _ = clips
    # working size below the clip's (480 -> 400): faces are mapped from working to source pixels
    report = ingest_video(project, paths["clip"], IngestConfig(track_stride=2, crop_every=2, min_height=40, working_size=400,
                          shot_detector="histogram"), progress=False, detector=_HeadFaces())
    assert report.status == "done"
    assert report.working_size == (400, 266)
    crops = [c for c, _ in _crops(project).values()]
    seen = {True: 0, False: 0}
    for c in crops:
        assert c.face_visible in (True, False)
        seen[c.face_visible] += 1
        if c.face_visible:
            np.testing.assert_allclose([c.face_x1, c.face_y1, c.face_x2, c.face_y2],
                                       [c.x1, c.y1, c.x2, c.y1 + (c.y2 - c.y1) / 6], rtol=1e-4, atol=0.05)
        else:
            assert c.face_x1 is c.face_y1 is c.face_x2 is c.face_y2 is None
        file = project.crop_root / c.path
        ref = int(to_signed([hex_to_hash(str(imagehash.phash(Image.open(file))))])[0])
        assert c.phash == ref, c.path  # the hash of the JPEG that was written (imagehash is the reference)
        img = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
        # sharpness (Laplacian variance) of the crop before JPEG encoding: close to the file's
        assert c.blur > 0 and abs(c.blur - cv2.Laplacian(img, cv2.CV_64F).var()) < 0.35 * c.blur
    assert seen[True] > 3 and seen[False] > 3
    hashed = hash_project(project, progress=False)
    assert hashed.hashed == 0 and hashed.already == len(crops)  # nothing left to hash for a release
    # a detector without face information stores None, not False
    plain, _ = _ingest(tmp_path, "plain", paths["clip"])
    assert {c.face_visible for c, _ in _crops(plain).values()} == {None}


class _LateShots:
    """The histogram shot detector deciding ``lag`` frames late, like a look-ahead model (TransNetV2)."""

    def __init__(self, lag: int):
        self.inner, self.lag = _create_shots("histogram"), lag
        self.name, self.frame_size = "late", self.inner.frame_size
        self.held: list[int] = []
        self.decided_until = -1

    def push(self, index, frame):
        self.held += self.inner.push(index, frame)
        self.decided_until = max(-1, index - self.lag)
        out = [c for c in self.held if c <= self.decided_until]
        self.held = [c for c in self.held if c > self.decided_until]
        return out

    def finish(self):
        self.decided_until = 10**9
        out, self.held = self.held + self.inner.finish(), []
        return out

    def reset(self):
        self.inner.reset()


@pytest.mark.slow
def test_late_shot_decisions_do_not_deadlock(clips, tmp_path, monkeypatch):
    """A look-ahead of 40 frames with queues of 2: the tracking loop waits for decisions, the detect stage
    runs ahead past its bound meanwhile, and the result equals the immediate detector's."""
    paths, _ = clips
    monkeypatch.setattr(pipeline_module, "create_shots", lambda name: _LateShots(40))
    cfg = IngestConfig(detector="hog", track_stride=2, crop_every=2, min_height=40, queue_size=2,
                       shot_detector="histogram")
    result = {}
    worker = threading.Thread(target=lambda: result.update(r=_ingest(tmp_path, "late", paths["clip"], cfg)), daemon=True)
    worker.start()
    worker.join(180)
    assert not worker.is_alive(), "ingest deadlocked waiting for shot decisions"
    project, report = result["r"]
    assert report.shot_cuts == CUTS
    monkeypatch.undo()
    ref_project, _ = _ingest(tmp_path, "now", paths["clip"], cfg)
    a, b = _crops(ref_project), _crops(project)
    assert set(a) == set(b) and all(a[k][0].shot_index == b[k][0].shot_index for k in a)


def test_auto_stride_follows_the_frame_rate():
    from portrait_builder.errors import UserError

    auto = IngestConfig()
    assert auto.track_stride == 0
    assert [auto.stride_for(f) for f in (7.0, 10.0, 15.0, 16.0, 23.976, 24.0, 25.0, 29.97, 60.0, 0.0)] == [1, 1, 1, 2, 2, 3, 3, 3, 3, 1]
    assert IngestConfig(track_stride=2).stride_for(60.0) == 2
    with pytest.raises(UserError, match="track_stride"):
        IngestConfig(track_stride=-1)


@pytest.mark.slow
def test_default_ingest_of_real_film(shared_data, tmp_path):
    """The defaults on the Tears of Steel excerpt (24 fps: stride 3): the editor's cut list
    (shots.json) at frame accuracy, faces from the default detector stored inside their person boxes,
    no track across a cut."""
    import json

    clip = shared_data / "movie" / "tears_of_steel" / "clip.mp4"
    cuts = json.loads((clip.parent / "shots.json").read_text())["cuts"]
    project, report = _ingest(tmp_path, "tos", clip, IngestConfig())
    assert report.track_stride == 3 and report.shot_cuts == tuple(cuts)
    crops = [c for c, _ in _crops(project).values()]
    faces = [c for c in crops if c.face_visible]
    assert faces and any(c.face_visible is False for c in crops)
    for c in faces:  # a face box lies in the upper part of its person box (source pixels)
        assert c.x1 - 2 <= c.face_x1 < c.face_x2 <= c.x2 + 2 and c.y1 - 2 <= c.face_y1 < c.face_y2 <= c.y2 + 2
        assert (c.face_y1 + c.face_y2) / 2 < (c.y1 + c.y2) / 2
    with project.session() as s:
        tracks = s.scalars(select(Track)).all()
    assert tracks and not any(t.first_frame < c <= t.last_frame for t in tracks for c in cuts)
    assert {c.shot_index for c in crops} <= set(range(len(cuts) + 1))
