"""Real film, hand ground truth: person crops of "Tears of Steel" cut at the hand-labelled boxes
(../shared/data/movie/tears_of_steel/gt.txt), labelled "in another tool" with character names, one of
them split under two names; `portrait labels import` then `portrait identities merge` must give
every crop the character of its ground-truth id. Reference: the hand-labelled ids of gt.txt."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from portrait_builder.annotation import add_annotator, list_identities
from portrait_builder.cli import main
from portrait_builder.store import current_labels
from portrait_builder.testing.annotation_sample import CROP_SIZE, SampleTrack, add_video

# what the other tool called each ground-truth person (gt id 3 under two names: split at frame 125)
NAMES = {1: "Young man", 2: "Man with glasses", 3: "Blonde woman", 4: "Woman"}
SECOND_NAME = "Scientist"
SPLIT_FRAME = 125
GENDERS = {"Young man": "male", "Man with glasses": "male", "Blonde woman": "female", "Woman": "female"}


@pytest.fixture
def film(project, shared_data):
    from portrait_builder.video.decode import VideoReader

    movie = shared_data / "movie" / "tears_of_steel"
    if not (movie / "gt.txt").is_file():
        pytest.skip("movie/tears_of_steel is not in ../shared/data")
    gt = np.loadtxt(movie / "gt.txt", delimiter=",", ndmin=2)
    gt = gt[gt[:, 6] == 1]  # flag 0 rows are ignore regions, not people
    cuts = json.loads((movie / "shots.json").read_text())["cuts"]
    wanted = {int(f) - 1 for f in gt[:, 0]}  # MOT frame f is frame index f - 1
    frames = {}
    with VideoReader(movie / "clip.mp4") as reader:
        for frame in reader:
            if frame.index in wanted:
                frames[frame.index] = Image.fromarray(frame.image[..., ::-1])  # BGR -> RGB
    assert set(frames) == wanted
    # one track per (person, shot): a track never crosses a cut
    tracks: dict[tuple[int, int], list] = {}
    for f, pid, x, y, w, h in gt[:, :6]:
        index = int(f) - 1
        shot = int(np.searchsorted(cuts, index, side="right"))
        img = frames[index]
        box = (max(x, 0.0), max(y, 0.0), min(x + w, img.width), min(y + h, img.height))
        crop = img.crop(tuple(int(round(v)) for v in box)).resize(CROP_SIZE, Image.BILINEAR)
        tracks.setdefault((int(pid), shot), []).append((index, crop, box))
    samples = [SampleTrack(k + 1, tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows))
               for k, (_, rows) in enumerate(sorted(tracks.items()))]  # fmt: skip
    crop_ids = add_video(project, "tears_of_steel", samples)
    truth = [pid for (pid, _), rows in sorted(tracks.items()) for _ in rows]
    frame_of = [r[0] for _, rows in sorted(tracks.items()) for r in rows]
    add_annotator(project, "other_tool", "maintainer")
    return project, list(zip(crop_ids, truth, frame_of, strict=True))


def test_names_from_another_tool_and_a_merge_match_the_ground_truth(film, tmp_path, capsys):
    project, crops = film
    rows, gender_given = [], set()
    for crop_id, pid, frame in crops:
        name = SECOND_NAME if pid == 3 and frame >= SPLIT_FRAME else NAMES[pid]
        rows.append((crop_id, "identity", name, "other_tool"))
        if name in GENDERS and name not in gender_given:  # the tool set each gender once; none for the second name
            rows.append((crop_id, "gender", GENDERS[name], "other_tool"))
            gender_given.add(name)
    path = tmp_path / "other_tool.csv"
    pd.DataFrame(rows, columns=["crop_id", "attribute", "value", "annotator"]).to_csv(path, index=False)
    assert main(["labels", "import", str(project.root), str(path)]) == 0
    assert "created 5 character(s)" in capsys.readouterr().out

    chars = {c.name: c for c in list_identities(project)}
    gt_counts = {pid: sum(1 for _, p, _ in crops if p == pid) for pid in NAMES}  # 7, 20, 20, 3 by hand
    assert {n: (c.crops, c.gender) for n, c in chars.items()} == {
        "Young man": (gt_counts[1], "male"), "Man with glasses": (gt_counts[2], "male"),
        "Blonde woman": (sum(1 for _, p, f in crops if p == 3 and f < SPLIT_FRAME), "female"),
        SECOND_NAME: (sum(1 for _, p, f in crops if p == 3 and f >= SPLIT_FRAME), "unsure"),
        "Woman": (gt_counts[4], "female"),
    }  # fmt: skip
    assert chars[SECOND_NAME].crops > 0 and chars["Blonde woman"].crops > 0  # the split is real

    keep, other = chars["Blonde woman"].id, chars[SECOND_NAME].id
    assert main(["identities", "merge", str(project.root), str(keep), str(other), "--annotator", "other_tool"]) == 0
    capsys.readouterr()
    by_name = {c.id: c.name for c in list_identities(project)}
    with project.session() as s:
        current = current_labels(s)
    for crop_id, pid, frame in crops:
        assert by_name[int(current[crop_id]["identity"])] == NAMES[pid], crop_id
        if pid == 3 and frame >= SPLIT_FRAME:
            assert current[crop_id]["gender"] == "female"  # the merged crops take KEEP's gender
    assert {c.name: c.crops for c in list_identities(project)}["Blonde woman"] == gt_counts[3]
