"""A release is written from the store a chunk of crops at a time; the chunk size must not change it.
The same store is released with chunks of a few crops (crops sharing a file name, an identity or a
video fall in different chunks) and with one chunk holding every crop: every file, annotations.parquet
and the manifest included, is byte-identical."""

from __future__ import annotations

import re

import imagehash
import pyarrow.parquet as pq
import pytest
from PIL import Image
from release_project import build_project, crop_image
from sqlalchemy import delete, func, select

from portrait_builder.errors import UserError
from portrait_builder.release import ReleaseConfig, load_release, verify_release, write_release, writer
from portrait_builder.store import Annotator, Crop, Identity, Release, SplitAssignment, Track, Video, add_label

QUIET = ReleaseConfig(progress=False, link="copy")
WHOLE = 10_000  # more crops than the store holds: one chunk
# (identity name or None, shot, frame indices, subset of each crop): tracks added after build_project's,
# so their crops get the largest ids, far from the crops whose file names they share
EXTRA_TRACKS = [
    (None, 1, [200, 205, 210], ["train", "train", "gallery"]),  # the names of track 2's first three crops
    ("B", 1, [105, 110], ["gallery", "gallery"]),  # two more crops of character B in frames it is in
    (None, 1, [210], ["gallery"]),  # a third crop named like track 2's crop at frame 210
]


def add_shared_names(project) -> None:
    """Crops of the first movie whose Market-1501 names equal earlier crops' but for ``k``."""
    tax = project.taxonomy
    with project.write() as s:
        video = s.scalars(select(Video).order_by(Video.id)).first()
        annotator = s.scalars(select(Annotator)).first()
        tracker = s.scalar(select(func.max(Track.tracker_id)))
        group = s.scalar(select(func.max(Crop.phash_group)))
        for t, (name, shot, frames, subsets) in enumerate(EXTRA_TRACKS):
            track = Track(video_id=video.id, tracker_id=tracker + 1 + t, first_frame=0, last_frame=1000,
                          shot_index=shot)
            s.add(track)
            s.flush()
            for i, (frame, subset) in enumerate(zip(frames, subsets, strict=True)):
                path = f"extra/t{t}/{i:06d}.jpg"
                file = project.crop_root / path
                file.parent.mkdir(parents=True, exist_ok=True)
                crop_image(1000 + 10 * t + i).save(file, quality=90)
                phash = int(str(imagehash.phash(Image.open(file))), 16)
                group += 1
                crop = Crop(video_id=video.id, track_id=track.id, frame_index=frame, x1=1.0, y1=2.0, x2=60.5,
                            y2=180.0, path=path, phash=phash - (1 << 64) if phash >= 1 << 63 else phash,
                            phash_group=group)
                s.add(crop)
                s.flush()
                if name is not None:
                    identity = s.scalars(select(Identity).where(Identity.name == name)).one()
                    add_label(s, tax, crop.id, "identity", identity.id, annotator_id=annotator.id)
                add_label(s, tax, crop.id, "age", "elderly", annotator_id=annotator.id, provenance="accepted")
                s.add(SplitAssignment(split="default", crop_id=crop.id, subset=subset))


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _release(project, out, chunk, monkeypatch):
    monkeypatch.setattr(writer, "RELEASE_CHUNK", chunk)
    folder = write_release(project, "1.0.0", out, QUIET)
    with project.write() as s:  # forget it: each test release is checked on its own
        s.execute(delete(Release))
    return folder


@pytest.mark.parametrize(("chunk", "row_group"), [(3, writer.ROW_GROUP), (7, 5)])
def test_chunks_do_not_change_the_release(project, tmp_path, monkeypatch, chunk, row_group):
    build_project(project)
    add_shared_names(project)
    monkeypatch.setattr(writer, "ROW_GROUP", row_group)
    small = _release(project, tmp_path / "small", chunk, monkeypatch)
    whole = _release(project, tmp_path / "whole", WHOLE, monkeypatch)
    assert verify_release(small) == []
    a, b = _files(small), _files(whole)
    assert set(a) == set(b)
    assert [name for name in a if a[name] != b[name]] == []  # annotations.parquet and manifest.json too
    parquet = pq.ParquetFile(small / "annotations.parquet")
    rows = parquet.metadata.num_rows
    assert [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)] == (
        [row_group] * (rows // row_group) + ([rows % row_group] if rows % row_group else []))


def test_k_counts_crops_named_alike_across_chunks(project, tmp_path, monkeypatch):
    build_project(project)
    add_shared_names(project)
    out = _release(project, tmp_path / "rel", 3, monkeypatch)
    ann = load_release(out).annotations.set_index("crop_id")
    by_name: dict[str, list[int]] = {}
    for crop_id, file in ann["file"].items():
        by_name.setdefault(file.rsplit("_", 1)[0], []).append(crop_id)
    shared = {name: ids for name, ids in by_name.items() if len(ids) > 1}
    # two train names, a distractor name given three times, another twice, two names of one character
    assert sorted(len(ids) for ids in shared.values()) == [2, 2, 2, 2, 3]
    for ids in shared.values():
        assert ids[-1] - ids[0] >= 3  # the crops of one name are in different chunks of 3 crops
        assert [ann.at[c, "file"].rsplit("_", 1)[1] for c in ids] == [f"{k:02d}.jpg" for k in range(1, len(ids) + 1)]
    assert "bounding_box_train/-1_c1s2_000200_02.jpg" in set(ann["file"])
    assert "bounding_box_test/0000_c1s2_000210_03.jpg" in set(ann["file"])


def test_missing_files_are_counted_in_every_chunk(project, tmp_path, monkeypatch):
    built = build_project(project)
    monkeypatch.setattr(writer, "RELEASE_CHUNK", 3)
    with project.session() as s:
        path_of = dict(s.execute(select(Crop.id, Crop.path)).all())
    released = [c for c in built.crops if built.subset[c] is not None]
    gone = [released[1], released[-2]]  # chunks apart
    for crop_id in gone:
        (project.crop_root / path_of[crop_id]).unlink()
    first = re.escape(path_of[gone[0]])
    with pytest.raises(UserError, match=rf"^2 crop files are missing under .* \(first: {first}\)$"):
        write_release(project, "1.0.0", tmp_path / "rel", QUIET)
    assert [p.name for p in tmp_path.iterdir()] == ["proj"]  # neither the release nor its temporary folder
