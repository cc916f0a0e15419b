"""Market-1501-style file names of a release and their parser.

A name is ``{pid}_c{cam}s{seq}_{frame:06d}_{k:02d}.jpg``:

- ``pid``: the release person id, 1..N contiguous within one release, written ``{pid:04d}``; a crop with
  no identity is ``-1`` in ``bounding_box_train/`` (Market's "junk") and ``0000`` in ``bounding_box_test/``
  (Market's distractors). A query always has an identity.
- ``cam``: the video ordinal: videos of the release sorted by store id and numbered from 1. It is NOT
  a camera in 1..6 (Market's stock loaders assert that; the integrations ship their own loader).
  ``manifest.json`` maps each ordinal back to the video (id, title, content fingerprint).
- ``seq``: the shot index of the crop's track plus 1 (shots are counted from 0 in the store).
- ``frame``: the source frame index, zero-padded to 6 digits (wider when the index needs it).
- ``k``: 1, 2, ... numbering crops that would otherwise share a name (same pid, cam, seq and frame,
  for example two unidentified people in one frame), in crop-id order; two digits or wider.

Every field is an integer, so the name is reversible; with the manifest it names one crop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SUBSET_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
DIR_SUBSETS = {v: k for k, v in SUBSET_DIRS.items()}
NO_ID_TRAIN = -1
DISTRACTOR = 0
NAME_RE = re.compile(r"^(-1|\d{4,})_c(\d+)s(\d+)_(\d{6,})_(\d{2,})\.jpg$")


@dataclass(frozen=True)
class ParsedName:
    pid: int  # -1: no identity (train), 0: distractor (gallery), else the release pid
    cam: int
    seq: int
    frame: int
    k: int


def pid_field(subset: str, pid: int | None) -> str:
    """The pid part of a name for a crop of ``subset`` with release pid ``pid`` (None: no identity)."""
    if pid is not None:
        if pid < 1:
            raise ValueError(f"release pids start at 1, got {pid}")
        return f"{pid:04d}"
    if subset == "train":
        return "-1"
    if subset == "gallery":
        return "0000"
    raise ValueError("a query crop must have an identity")


def stem(subset: str, pid: int | None, cam: int, seq: int, frame: int) -> str:
    """Everything but ``_{k}.jpg``: crops sharing a stem are told apart by ``k``."""
    return f"{pid_field(subset, pid)}_c{cam}s{seq}_{frame:06d}"


def file_name(stem_text: str, k: int) -> str:
    return f"{stem_text}_{k:02d}.jpg"


def parse_name(name: str) -> ParsedName:
    """Parse a release file name (without folder); raise ValueError when it is not one."""
    m = NAME_RE.match(name)
    if m is None:
        raise ValueError(f"not a release file name: {name!r}")
    pid, cam, seq, frame, k = (int(g) for g in m.groups())
    return ParsedName(pid, cam, seq, frame, k)
