"""Builders shared by the release tests (imported by name: a module called ``conftest`` would clash
with the other test folders' conftest when pytest is given several folders). A small, real project: 2 videos, 7 tracks, 34 JPEG crops, identities, labels,
pHashes (imagehash), near-duplicate groups and a split that satisfies the split invariants."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from PIL import Image
from sqlalchemy import func, select

from portrait_builder.store import Annotator, Crop, Identity, Label, SplitAssignment, Track, Video, add_label

GROUP_THRESHOLD = 8
# (video, shot, identity key or None, number of crops)
TRACKS = [
    (0, 0, "A", 6), (0, 1, "B", 6), (0, 1, None, 4), (0, 2, "C", 4),
    (1, 0, "D", 6), (1, 0, "E", 4), (1, 1, None, 4),
]  # fmt: skip
TRAIN_IDS = {"A", "D"}
GENDER = {"A": "female", "B": "male", "C": "female", "D": "male", "E": "female"}
AGES = ["young_adult", "child", "elderly", "unsure", "middle_aged", "teenager"]
BODY = ["standing", "walking", "sitting", "unsure", "running", "lying"]
ARM = ["arms_crossed", "arms_down", "unsure", "holding_object", "gesturing", "hand_to_face"]
EXPR = [["happiness"], ["neutral"], ["surprise", "fear"], ["unsure"], ["sadness"], ["anger", "disgust"]]


@dataclass
class Built:
    crops: list[int] = field(default_factory=list)
    identities: dict[str, int] = field(default_factory=dict)
    subset: dict[int, str | None] = field(default_factory=dict)
    unassigned: list[int] = field(default_factory=list)
    annotator: str = "ada"


def crop_image(seed: int) -> Image.Image:
    """A blocky random 256x128 image: distinct seeds give pHashes far apart, equal seeds equal images."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(16, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((128, 256), Image.NEAREST)


def _components(hashes: list[int], threshold: int) -> list[int]:
    """Brute-force connected components of Hamming distance <= threshold (a reference, O(n^2))."""
    n = len(hashes)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if bin(hashes[i] ^ hashes[j]).count("1") <= threshold:
                parent[find(i)] = find(j)
    roots = {}
    return [roots.setdefault(find(i), len(roots)) for i in range(n)]


def build_project(project, split: str = "default") -> Built:
    """Fill ``project``: images on disk, rows in the store, labels through add_label, a valid split."""
    built = Built()
    tax = project.taxonomy
    rows = []  # (track_index, crop_index_in_track, path, seed)
    with project.write() as s:
        ann = Annotator(name=built.annotator, role="annotator")
        s.add(ann)
        videos = []
        for v in range(2):
            video = Video(path=f"/movies/m{v}.mp4", fingerprint=f"{v + 1:064x}", title=f"Movie {v + 1}", fps=25.0,
                          frame_count=10_000, width=1280, height=720)  # fmt: skip
            s.add(video)
            videos.append(video)
        s.flush()
        seed = 0
        for t, (v, shot, key, n) in enumerate(TRACKS):
            track = Track(video_id=videos[v].id, tracker_id=t + 1, first_frame=0, last_frame=1000, shot_index=shot)
            s.add(track)
            s.flush()
            if key is not None and key not in built.identities:
                ident = Identity(video_id=videos[v].id, name=key, gender=GENDER[key], created_by=None)
                s.add(ident)
                s.flush()
                built.identities[key] = ident.id
            for i in range(n):
                # crops 0 and 1 of a track are the same image: a near-duplicate pair in one group
                seed += 0 if i == 1 else 1
                path = f"v{v}/t{t}/{i:06d}.jpg"
                file = project.crop_root / path
                file.parent.mkdir(parents=True, exist_ok=True)
                image = crop_image(seed)
                image.save(file, quality=90)
                phash = int(str(imagehash.phash(Image.open(file))), 16)
                crop = Crop(video_id=videos[v].id, track_id=track.id, frame_index=100 * t + 5 * i,
                            x1=10.0 + i, y1=20.5, x2=74.25 + i, y2=200.0, path=path,
                            phash=phash - (1 << 64) if phash >= 1 << 63 else phash)  # fmt: skip
                s.add(crop)
                s.flush()
                rows.append((t, i, crop, key))
        groups = _components([r[2].phash & 0xFFFFFFFFFFFFFFFF for r in rows], GROUP_THRESHOLD)
        for (t, i, crop, key), g in zip(rows, groups, strict=True):
            crop.phash_group = g
            built.crops.append(crop.id)
            k = len(built.crops)
            if key is not None:
                add_label(s, tax, crop.id, "identity", built.identities[key], annotator_id=ann.id)
                add_label(s, tax, crop.id, "gender", GENDER[key], annotator_id=ann.id)
            if k % 5 != 0:  # every fifth crop keeps its appearance/posture/emotion unlabelled
                add_label(s, tax, crop.id, "age", AGES[k % 6], annotator_id=ann.id)
                add_label(s, tax, crop.id, "physique", ["thin", "medium", "heavy", "unsure"][k % 4], annotator_id=ann.id)
                add_label(s, tax, crop.id, "body_posture", BODY[k % 6], annotator_id=ann.id)
                add_label(s, tax, crop.id, "arm_posture", ARM[k % 6], annotator_id=ann.id)
                add_label(s, tax, crop.id, "expression", EXPR[k % 6], annotator_id=ann.id)
            if key is None:
                subset = "train" if (TRACKS[t][0] == 0 and i < 2) else "gallery"
                if t == len(TRACKS) - 1 and i == TRACKS[t][3] - 1:
                    subset = None  # a crop the split left out
            elif key in TRAIN_IDS:
                subset = "train"
            else:
                subset = "query" if i == 0 else "gallery"
            built.subset[crop.id] = subset
            if subset is None:
                built.unassigned.append(crop.id)
            else:
                s.add(SplitAssignment(split=split, crop_id=crop.id, subset=subset))
    return built


def frame_equivalent(project, split: str = "default"):
    """The columns of ``stats.project_frame`` built directly from the store (for the pure record tests)."""
    import pandas as pd
    from sqlalchemy import select

    from portrait_builder.store import CurrentLabel

    tax = project.taxonomy
    with project.session() as s:
        crops = s.execute(select(Crop).order_by(Crop.id)).scalars().all()
        subsets = dict(s.execute(select(SplitAssignment.crop_id, SplitAssignment.subset).where(SplitAssignment.split == split)).all())
        labels = {}
        for crop_id, attr, value in s.execute(select(CurrentLabel.crop_id, CurrentLabel.attribute, CurrentLabel.value)):
            labels.setdefault(crop_id, {})[attr] = value
    rows = []
    for c in crops:
        lab = labels.get(c.id, {})
        ident = lab.get("identity")
        row = {"crop_id": c.id, "path": c.path, "video_id": c.video_id, "track_id": c.track_id,
               "frame_index": c.frame_index, "x1": c.x1, "y1": c.y1, "x2": c.x2, "y2": c.y2, "phash": c.phash,
               "phash_group": c.phash_group, "identity": int(ident) if ident and ident.isdigit() else None,
               "subset": subsets.get(c.id)}  # fmt: skip
        for a in tax.attributes:
            if a.kind != "identity":
                row[a.name] = tax.decode(a.name, lab.get(a.name))
        rows.append(row)
    columns = ["crop_id", "path", "video_id", "track_id", "frame_index", "x1", "y1", "x2", "y2", "phash",
               "phash_group", "identity", "subset", *(a.name for a in tax.attributes if a.kind != "identity")]
    df = pd.DataFrame(rows, columns=columns)
    for col in ("phash", "phash_group", "identity"):
        df[col] = df[col].astype("Int64")
    return df


def written_release(folder):
    """A SQLite project built by :func:`build_project`, released as 1.0.0 (copies) into ``folder/rel``."""
    from portrait_builder.release import ReleaseConfig, write_release
    from portrait_builder.store import Project

    project = Project.init(folder / "proj")
    build_project(project)
    out = write_release(project, "1.0.0", folder / "rel", ReleaseConfig(progress=False, link="copy"))
    project.close()
    return out


def import_file(folder: Path, rows, name: str = "labels.csv") -> Path:
    """A `portrait labels import` file in ``folder``: one row per (crop_id, attribute, value, annotator)."""
    path = folder / name
    pd.DataFrame(rows, columns=["crop_id", "attribute", "value", "annotator"]).to_csv(path, index=False)
    return path


def label_rows(project) -> int:
    """Label rows stored, the history included (an import that fails adds none)."""
    with project.session() as s:
        return s.scalar(select(func.count()).select_from(Label))
