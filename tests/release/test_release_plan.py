"""The release plan (pids, video ordinals, file-name counters) made from frames given one at a time is
the plan of the whole frame; ``k`` counts crops sharing a file name exactly, in crop-id order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from portrait_builder.errors import UserError
from portrait_builder.release.plan import NAME_KEYS, ReleaseScan, file_counters
from portrait_builder.release.records import VideoInfo

VIDEOS = {v: VideoInfo(v, f"Movie {v}", f"{v:064x}") for v in (3, 8, 11)}


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` crops in ascending crop-id order, many of them sharing a file name."""
    rng = np.random.default_rng(seed)
    identity = pd.array(rng.choice([7, 9, 40, -1], n), dtype="Int64")
    identity[identity == -1] = pd.NA
    subset = rng.choice(["train", "gallery", "query", None], n, p=[0.4, 0.4, 0.1, 0.1]).astype(object)
    subset[(subset == "query") & identity.isna()] = "gallery"
    return pd.DataFrame({
        "crop_id": np.cumsum(rng.integers(1, 4, n)), "path": [f"c{i}.jpg" for i in range(n)],
        "video_id": rng.choice(list(VIDEOS), n), "track_id": rng.integers(1, 6, n), "frame_index": rng.integers(0, 4, n),
        "phash": pd.array(rng.integers(-5, 5, n), dtype="Int64"), "phash_group": pd.array(rng.integers(0, 9, n), dtype="Int64"),
        "identity": identity, "subset": subset,
    })  # fmt: skip


SHOTS = {1: 0, 2: 0, 3: 1, 4: 2}  # track 5 has no shot index: shot 0, like tracks 1 and 2


def _plan(frame: pd.DataFrame, chunk: int):
    scan = ReleaseScan(SHOTS)
    for start in range(0, len(frame), chunk):
        scan.add(frame.iloc[start:start + chunk])
    return scan, scan.finish(VIDEOS)


def test_file_counters_count_each_name_in_order():
    rng = np.random.default_rng(1)
    keys = {name: rng.integers(0, 3, 5_000) for name in NAME_KEYS}
    k = file_counters(keys)
    names = pd.Series([tuple(row) for row in zip(*(keys[n] for n in NAME_KEYS), strict=True)])
    assert k.tolist() == (names.groupby(names).cumcount() + 1).tolist()
    assert k.dtype == np.uint8 and k.max() > 10  # the smallest type that holds the counts
    assert file_counters({name: np.zeros(300, dtype=np.int32) for name in NAME_KEYS}).dtype == np.uint16
    assert file_counters({name: np.empty(0, dtype=np.int32) for name in NAME_KEYS}).tolist() == []


@pytest.mark.parametrize("chunk", [1, 7, 50])
def test_a_plan_from_chunks_is_the_plan_of_the_whole(chunk):
    frame = _frame(400)
    _, whole = _plan(frame, len(frame))
    scan, plan = _plan(frame, chunk)
    assert (plan.pid_of, plan.cam_of, plan.videos, plan.identities, plan.excluded) == (
        whole.pid_of, whole.cam_of, whole.videos, whole.identities, whole.excluded)
    assert np.array_equal(plan.crop_ids, whole.crop_ids) and np.array_equal(plan.k, whole.k)
    assigned = frame[frame["subset"].notna()]
    assert plan.excluded == len(frame) - len(assigned) and scan.assigned == len(assigned)
    # k: 1, 2, ... among the crops of one subset, identity, video, shot (not track) and frame, by crop id
    shot = assigned["track_id"].map(SHOTS).fillna(0)
    stem = list(zip(assigned["subset"], assigned["identity"].fillna(-1), assigned["video_id"], shot,
                    assigned["frame_index"], strict=True))
    expected = pd.Series(stem).groupby(pd.Series(stem)).cumcount() + 1
    assert plan.k_of(assigned["crop_id"].to_numpy()).tolist() == expected.tolist()
    assert plan.k.max() > 2
    assert [i["video_id"] for i in plan.identities] == [
        int(assigned.loc[assigned["identity"] == i["store_identity"], "video_id"].min()) for i in plan.identities]


def test_refusals_name_the_first_crop_in_any_chunk():
    frame = _frame(200)
    frame.loc[150, "subset"], frame.loc[150, "identity"] = "query", pd.NA
    frame.loc[170, "subset"], frame.loc[170, "identity"] = "query", pd.NA
    with pytest.raises(UserError, match=rf"^2 query crops have no identity \(first: crop {frame.at[150, 'crop_id']}\)"):
        _plan(frame, 3)
    frame.loc[120, "subset"] = "test"
    with pytest.raises(UserError, match="unknown subset 'test'"):
        _plan(frame, 3)
    with pytest.raises(ValueError, match="crop-id order"):
        _plan(frame.iloc[::-1], 3)
