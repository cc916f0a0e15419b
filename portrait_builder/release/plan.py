"""Who and what a release holds, learnt from the store's crops a chunk at a time before a row is
written: the counts the writer checks, the release pids and video ordinals, and each crop's ``k``.

Pure: frames in, a :class:`ReleasePlan` out (the writer feeds chunks of the store, ``records.build_table``
one whole frame). Between chunks only counts, per-identity and per-video values and a few NumPy
integers per released crop are kept, never a row: ``k`` numbers the crops sharing a file name among
all released crops, so the name parts of every one of them are needed at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from portrait_builder.errors import UserError

SUBSETS = ("train", "query", "gallery")
_INT32 = np.iinfo(np.int32)
_SUBSET_CODES = {name: code for code, name in enumerate(SUBSETS)}
# What a file name is made of, k aside: subset (folder), store identity (pid), video (cam), shot (seq) and
# frame. pid, cam and seq are one-to-one with identity, video and shot, so crops share a name exactly
# when they share these keys.
NAME_KEYS = ("subset", "identity", "video", "shot", "frame")


@dataclass(frozen=True)
class VideoInfo:
    video_id: int
    title: str
    fingerprint: str


@dataclass(frozen=True)
class ReleasePlan:
    pid_of: dict[int, int]  # store identity -> release pid, 1..N in store-id order
    cam_of: dict[int, int]  # store video id -> video ordinal, 1..M in store-id order
    videos: list[dict]  # the manifest's [{"cam", "video_id", "title", "fingerprint"}]
    identities: list[dict]  # the manifest's [{"pid", "store_identity", "video_id"}]
    excluded: int  # crops of the store that the split does not assign
    crop_ids: np.ndarray  # the released crops, ascending (int64)
    k: np.ndarray  # the k of each, same order (the smallest unsigned type that holds the largest)

    def k_of(self, crop_ids: np.ndarray) -> np.ndarray:
        """The k of released crops ``crop_ids``."""
        pos = np.minimum(np.searchsorted(self.crop_ids, crop_ids), max(len(self.crop_ids) - 1, 0))
        if len(crop_ids) and (not len(self.crop_ids) or (self.crop_ids[pos] != crop_ids).any()):
            # the writer's two passes read one snapshot of the store, so this is a bug, not a user error
            raise ValueError("crops outside the release plan")
        return self.k[pos]


def file_counters(keys: Mapping[str, np.ndarray]) -> np.ndarray:
    """``k`` of each crop: 1, 2, ... among the crops with equal ``NAME_KEYS`` columns, in the given
    (crop-id) order. Exact: one stable sort of the keys, then a count within each run of equal keys."""
    n = len(keys["frame"])
    order = np.lexsort([keys[name] for name in reversed(NAME_KEYS)])  # stable: equal keys stay in crop-id order
    starts = np.zeros(n, dtype=bool)
    starts[:1] = True
    for name in NAME_KEYS:
        column = keys[name][order]
        starts[1:] |= column[1:] != column[:-1]
    k_sorted = np.arange(n) + 1
    run_start = np.where(starts, k_sorted, 0)
    np.maximum.accumulate(run_start, out=run_start)
    k_sorted -= run_start - 1
    k = np.empty(n, dtype=np.min_scalar_type(int(k_sorted.max())) if n else np.uint8)
    k[order] = k_sorted
    return k


def _compact(values: np.ndarray) -> np.ndarray:
    """int32 where the values fit (store ids, shots and frame numbers do): every released crop's keys are held."""
    if len(values) and (values.min() < _INT32.min or values.max() > _INT32.max):
        return values.astype(np.int64)
    return values.astype(np.int32)


class ReleaseScan:
    """Reads frames of ``stats.project_frame`` columns (the taxonomy attributes are not needed), each
    crop of the store once, in crop-id order, and makes the plan of their release."""

    def __init__(self, shots: Mapping[int, int]):
        self._shots = pd.Series(dict(shots), dtype="int64")  # track id -> shot index
        self.crops = 0
        self.assigned = 0
        self.no_phash = 0
        self.no_group = 0
        self._bad_subsets: set[str] = set()
        self._query_no_identity = 0
        self._first_query_no_identity: int | None = None
        self._video_of_identity: dict[int, int] = {}  # lowest video id of each identity's crops
        self._video_ids: set[int] = set()
        self._keys: dict[str, list[np.ndarray]] = {name: [] for name in ("crop_id", *NAME_KEYS)}
        self._last_crop: int | None = None

    def add(self, frame: pd.DataFrame) -> None:
        self._check_order(frame["crop_id"].to_numpy(dtype=np.int64))
        assigned = frame[frame["subset"].notna()]
        self.crops += len(frame)
        self.assigned += len(assigned)
        self.no_phash += int(assigned["phash"].isna().sum())
        self.no_group += int(assigned["phash_group"].isna().sum())
        self._bad_subsets |= set(assigned["subset"]) - set(SUBSETS)
        identity = assigned["identity"].astype("Int64")
        query_no_identity = assigned.loc[(assigned["subset"] == "query") & identity.isna(), "crop_id"]
        if len(query_no_identity) and self._first_query_no_identity is None:
            self._first_query_no_identity = int(query_no_identity.iloc[0])
        self._query_no_identity += len(query_no_identity)
        self._video_ids.update(int(v) for v in assigned["video_id"].unique())
        lowest = assigned.loc[identity.notna(), "video_id"].groupby(identity.dropna()).min()
        for store_identity, video in zip(lowest.index.tolist(), lowest.tolist(), strict=True):
            self._video_of_identity[store_identity] = min(video, self._video_of_identity.get(store_identity, video))
        self._add_keys(assigned, identity)

    def _check_order(self, crop_ids: np.ndarray) -> None:
        if not len(crop_ids):
            return
        if (np.diff(crop_ids) <= 0).any() or (self._last_crop is not None and crop_ids[0] <= self._last_crop):
            raise ValueError("frames must come in ascending crop-id order, each crop once")
        self._last_crop = int(crop_ids[-1])

    def _add_keys(self, assigned: pd.DataFrame, identity: pd.Series) -> None:
        shot = assigned["track_id"].map(self._shots).fillna(0)  # a track without a shot index: shot 0
        columns = {
            "crop_id": assigned["crop_id"].to_numpy(dtype=np.int64),
            "subset": assigned["subset"].map(_SUBSET_CODES).fillna(-1).to_numpy(dtype=np.int8),  # -1: refused
            "identity": _compact(identity.fillna(-1).to_numpy(dtype=np.int64)),
            "video": _compact(assigned["video_id"].to_numpy(dtype=np.int64)),
            "shot": _compact(shot.to_numpy(dtype=np.int64)),
            "frame": _compact(assigned["frame_index"].to_numpy(dtype=np.int64)),
        }
        for name, values in columns.items():
            self._keys[name].append(values)

    def finish(self, videos: Mapping[int, VideoInfo]) -> ReleasePlan:
        """The plan, once every frame is in; refuses a split the release cannot be cut from.
        ``videos``: store video id -> its info."""
        if self._bad_subsets:
            raise UserError(f"unknown subset {sorted(self._bad_subsets)[0]!r} in the split; valid: {', '.join(SUBSETS)}")
        if self._query_no_identity:
            raise UserError(
                f"{self._query_no_identity} query crops have no identity (first: crop {self._first_query_no_identity}); "
                "the split must put unidentified crops in train or gallery only"
            )
        video_ids = sorted(self._video_ids)
        missing_videos = [v for v in video_ids if v not in videos]
        if missing_videos:
            raise UserError(f"video {missing_videos[0]} of the split is not in the store")
        store_ids = sorted(self._video_of_identity)
        pid_of = {sid: pid for pid, sid in enumerate(store_ids, start=1)}
        cam_of = {vid: cam for cam, vid in enumerate(video_ids, start=1)}
        keys = {name: _concatenate(parts) for name, parts in self._keys.items()}
        crop_ids = keys.pop("crop_id")
        return ReleasePlan(
            pid_of=pid_of,
            cam_of=cam_of,
            videos=[{"cam": cam_of[v], "video_id": v, "title": videos[v].title, "fingerprint": videos[v].fingerprint}
                    for v in video_ids],
            identities=[{"pid": pid_of[s], "store_identity": s, "video_id": self._video_of_identity[s]}
                        for s in store_ids],
            excluded=self.crops - self.assigned,
            crop_ids=crop_ids,
            k=file_counters(keys),
        )


def _concatenate(parts: list[np.ndarray]) -> np.ndarray:
    """One array of the parts, dropped once copied: with one column at a time, the keys of all crops
    are held about once, not twice."""
    out = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    parts.clear()
    return out
