"""Face embeddings of real film faces (the development clip): dlib's descriptor separates the same man
in two frames from another person, the face box lands where extract_crop put the face, and the
store pass is resumable. Skips without ../shared/data or without the weights (`make weights`)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from portrait_builder.characters.geometry import face_box_in_crop
from portrait_builder.ingest.crops import extract_crop

# Frame index -> (ground-truth id, person box xyxy) from movie/tears_of_steel/gt.txt (frame = index + 1):
# id 2 is the man with glasses (lab shot), id 4 the woman of the last shot.
PEOPLE = {90: (2, (412, 0, 597, 360)), 150: (2, (345, 5, 565, 360)), 234: (4, (195, 3, 542, 360))}


def test_face_box_lands_where_extract_crop_puts_the_face():
    # Reference: extract_crop itself. A white face-sized patch in a dark frame, cut out with its person box.
    frame = np.zeros((360, 640, 3), np.uint8)
    for box, face, sar in (((300, 40, 380, 330), (320, 50, 356, 92), 1.0), ((10, 100, 200, 260), (60, 110, 110, 160), 1.0),
                           ((300, 40, 380, 330), (320, 50, 356, 92), 2.0)):  # fmt: skip
        img = frame.copy()
        img[face[1] : face[3], face[0] : face[2]] = 255
        crop = extract_crop(img, np.array(box, np.float32), sar)
        ys, xs = np.nonzero(crop[:, :, 0] > 127)
        mapped = face_box_in_crop(box, face, sar)
        np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], mapped, atol=1.5)


@pytest.fixture(scope="module")
def film_faces():
    """frame index -> (gt id, frame, person box, face box) of the people above, faces from the film detector."""
    from portrait_builder.boxes import box_iou
    from portrait_builder.detect import create_detector
    from portrait_builder.errors import UserError
    from portrait_builder.weights import weight_file
    from tests.conftest import SHARED_DATA

    clip = SHARED_DATA / "movie" / "tears_of_steel" / "clip.mp4"
    if not clip.is_file():
        pytest.skip("../shared/data is not present")
    try:
        weight_file("face-recognition-models", "dlib_face_recognition_resnet_model_v1.dat")
        detector = create_detector("film", device="cpu")
    except UserError as exc:
        pytest.skip(str(exc))
    cap = cv2.VideoCapture(str(clip))
    out = {}
    for index in range(max(PEOPLE) + 1):
        ok, frame = cap.read()
        assert ok, f"cannot decode frame {index}"
        if index in PEOPLE:
            gid, box = PEOPLE[index]
            dets = detector.detect([frame])[0]
            has_face = ~np.isnan(dets.faces).any(axis=1)
            iou = box_iou(np.array([box], np.float32), dets.xyxy)[0]
            k = int(np.argmax(np.where(has_face, iou, -1)))
            assert has_face[k] and iou[k] > 0.4, f"no face found for id {gid} in frame {index}"
            out[index] = (gid, frame, dets.xyxy[k], dets.faces[k])
    cap.release()
    return out


def test_same_face_in_two_frames_is_closer_than_two_people(film_faces):
    from portrait_builder.characters.faces import FaceEmbedder

    embedder = FaceEmbedder()
    desc = {}
    for index, (_, frame, box, face) in film_faces.items():
        crop = extract_crop(frame, box)
        desc[index] = embedder.embed(crop, face_box_in_crop(box, face))
        # From the crop as from the full frame: the mapped box finds the same face.
        full = embedder.embed(frame, face)
        assert np.linalg.norm(desc[index] - full) < 0.4, index  # well inside one person (< 0.6)
    same = np.linalg.norm(desc[90] - desc[150])
    different = min(np.linalg.norm(desc[90] - desc[234]), np.linalg.norm(desc[150] - desc[234]))
    assert same < 0.6 <= different  # dlib's rule of thumb: one person below 0.6
    assert all(1.2 < np.linalg.norm(d) < 1.6 for d in desc.values())  # raw scale (ClusterConfig assumes ~1.4)


def _store_faces(project, film_faces) -> list[int]:
    from portrait_builder.store import Crop, Track, Video

    def tx(s):
        video = Video(path="clip.mp4", fingerprint="tos", title="clip", status="done", report={"video": {"sar": 1.0}})
        s.add(video)
        s.flush()
        ids = []
        for index, (_, frame, box, face) in film_faces.items():
            # in shots far apart (clothes colour cannot link them): only faces can
            track = Track(video_id=video.id, tracker_id=index, first_frame=index, last_frame=index, shot_index=index // 10)
            s.add(track)
            s.flush()
            path = f"v1/f{index}.jpg"
            (project.crop_root / "v1").mkdir(exist_ok=True)
            cv2.imwrite(str(project.crop_root / path), extract_crop(frame, box))
            crop = Crop(video_id=video.id, track_id=track.id, frame_index=index, x1=float(box[0]), y1=float(box[1]),
                        x2=float(box[2]), y2=float(box[3]), path=path, face_visible=True, face_x1=float(face[0]),
                        face_y1=float(face[1]), face_x2=float(face[2]), face_y2=float(face[3]),
                        shot_index=index // 10)  # fmt: skip
            s.add(crop)
            s.flush()
            ids.append(crop.id)
        return ids

    return project.run_write(tx)


def test_face_pass_is_resumable(project, film_faces, monkeypatch):
    from portrait_builder.characters import faces
    from portrait_builder.store import Crop

    ids = _store_faces(project, film_faces)
    real_write = faces.write_face_embeddings
    calls = []

    def crash_after_first(proj, values):
        if calls:
            raise KeyboardInterrupt  # the user stops the pass after its first committed batch
        calls.append(values)
        real_write(proj, values)

    monkeypatch.setattr(faces, "write_face_embeddings", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        faces.embed_faces(project, workers=1, batch_size=1, progress=False)
    with project.session() as s:
        first = dict(s.execute(select(Crop.id, Crop.face_embedding).where(Crop.face_embedding.is_not(None))).all())
    assert list(first) == ids[:1]
    monkeypatch.setattr(faces, "write_face_embeddings", real_write)
    assert faces.embed_faces(project, workers=1, batch_size=1, progress=False) == len(ids) - 1
    assert faces.embed_faces(project, workers=1, progress=False) == 0  # nothing left
    with project.session() as s:
        stored = dict(s.execute(select(Crop.id, Crop.face_embedding)).all())
    assert stored[ids[0]] == first[ids[0]]  # kept, not recomputed
    assert all(len(stored[i]) == 128 * 2 for i in ids)  # float16

    # Real faces through the clustering: the man with glasses (frames 90 and 150) is one candidate
    # across the film, the woman (234) another.
    from portrait_builder.characters import list_candidates, update_characters

    assert update_characters(project, progress=False).clustered == {1: 2}
    with project.session() as s:
        track_of = dict(s.execute(select(Crop.frame_index, Crop.track_id)).all())
    groups = {frozenset(c.track_ids) for c in list_candidates(project)}
    assert groups == {frozenset({track_of[90], track_of[150]}), frozenset({track_of[234]})}


@pytest.mark.slow
def test_parallel_pass_stores_what_one_process_does(tmp_path, film_faces):
    from portrait_builder.characters.faces import embed_faces
    from portrait_builder.store import Crop, Project

    results = []
    for workers in (1, 2):
        project = Project.init(tmp_path / f"w{workers}")
        _store_faces(project, film_faces)
        assert embed_faces(project, workers=workers, batch_size=1, progress=False) == len(film_faces)
        with project.session() as s:
            results.append(s.execute(select(Crop.frame_index, Crop.face_embedding).order_by(Crop.frame_index)).all())
        project.close()
    assert results[0] == results[1]
