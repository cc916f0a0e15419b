"""Identity-disjoint train / query / gallery splits (the paper's Table 2; docs/dataset.md).

:func:`split_crops` is a pure function of a crop table and a :class:`SplitConfig`; the rules:

1. Test units are drawn at random (seeded): identities (``by="identity"``) or whole movies
   (``by="movie"``); train and test identities are disjoint.
2. Every crop of a test identity is query or gallery; queries come only from test identities.
3. Per test identity, ``min(queries_per_identity, n_groups // 2)`` queries, each from a different
   pHash group (a crop without a group is its own group), so at least half of that identity's groups
   stay entirely in the gallery. So every query has a gallery image of its identity outside its own
   group (evaluation ignores same-group gallery images), and query identities are a subset of
   gallery identities. An identity with a single group gives no query (it stays in the gallery):
   that is why the paper has 404 query identities for 426 gallery ones.
4. Crops without identity go to train or gallery (distractors), never query: with ``by="movie"``
   they follow their movie; with ``by="identity"`` a seeded ``unidentified_gallery_fraction`` of
   their pHash groups goes to the gallery (a whole group together, so near-duplicates stay on one side).
5. Deterministic for a seed and independent of the row order of the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from portrait_builder.defaults import SPLIT_BY, SPLIT_QUERIES_PER_IDENTITY, SPLIT_SUBSETS, SPLIT_TEST_FRACTION
from portrait_builder.errors import UserError

SUBSETS = SPLIT_SUBSETS
BY = SPLIT_BY
DEFAULT_TEST_FRACTION = SPLIT_TEST_FRACTION  # the paper's 426 test identities of 1,066
DEFAULT_QUERIES_PER_IDENTITY = SPLIT_QUERIES_PER_IDENTITY  # the paper's ~30 queries per identity


@dataclass(frozen=True)
class SplitConfig:
    """How to split. ``seed`` makes it reproducible; see the module docstring for the rules."""

    seed: int = 0
    by: str = "identity"
    test_fraction: float = DEFAULT_TEST_FRACTION
    queries_per_identity: int = DEFAULT_QUERIES_PER_IDENTITY
    # Share of the unidentified crops (by pHash group) that become gallery distractors when
    # splitting by identity; the paper's gallery holds many crops without identity.
    unidentified_gallery_fraction: float = DEFAULT_TEST_FRACTION

    def __post_init__(self):
        if self.by not in BY:
            raise UserError(f"unknown split mode {self.by!r}; valid: {', '.join(BY)}")
        if not 0.0 < self.test_fraction < 1.0:
            raise UserError(f"test fraction must be strictly between 0 and 1, got {self.test_fraction}")
        if self.queries_per_identity < 1:
            raise UserError(f"queries per identity must be at least 1, got {self.queries_per_identity}")
        if not 0.0 <= self.unidentified_gallery_fraction <= 1.0:
            raise UserError(
                f"unidentified gallery fraction must be between 0 and 1, got {self.unidentified_gallery_fraction}"
            )

    def as_dict(self) -> dict:
        return {
            "seed": int(self.seed),
            "by": self.by,
            "test_fraction": float(self.test_fraction),
            "queries_per_identity": int(self.queries_per_identity),
            "unidentified_gallery_fraction": float(self.unidentified_gallery_fraction),
        }


REQUIRED = ("crop_id", "identity", "video_id", "phash_group")


def _group_key(df: pd.DataFrame) -> np.ndarray:
    """pHash group per row; a crop without a group is its own group (negative ids never collide)."""
    g = df["phash_group"]
    out = -df["crop_id"].to_numpy(dtype=np.int64) - 1
    has = g.notna().to_numpy()
    out[has] = g[has].to_numpy(dtype=np.int64)
    return out


def split_crops(df: pd.DataFrame, config: SplitConfig) -> pd.Series:
    """Assign every crop to 'train', 'query' or 'gallery'.

    ``df`` columns: ``crop_id`` (unique ints), ``identity`` (nullable Int64; NA = no identity),
    ``video_id``, ``phash_group`` (nullable). Returns a Series indexed by ``crop_id`` (sorted).
    """
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"split_crops needs columns {', '.join(REQUIRED)}; missing {', '.join(missing)}")
    df = df.sort_values("crop_id", kind="stable").reset_index(drop=True)
    if df["crop_id"].duplicated().any():
        raise ValueError("crop_id must be unique")
    n = len(df)
    rng = np.random.default_rng(config.seed)
    subset = np.full(n, "train", dtype=object)
    ident = df["identity"]
    has_id = ident.notna().to_numpy()
    ident_vals = np.where(has_id, ident.fillna(-1).to_numpy(dtype=np.int64), -1)
    videos = df["video_id"].to_numpy(dtype=np.int64)
    groups = _group_key(df)
    identities = np.unique(ident_vals[has_id])

    if config.by == "identity":
        n_test = int(round(config.test_fraction * len(identities)))
        if len(identities) >= 2:
            n_test = min(max(n_test, 1), len(identities) - 1)
        test_ids = np.sort(rng.permutation(identities)[:n_test]) if len(identities) else identities
        is_test_id = has_id & np.isin(ident_vals, test_ids)
        # unidentified crops: whole pHash groups to the gallery with the configured probability
        un = ~has_id
        ugroups = np.unique(groups[un])
        pick = rng.random(len(ugroups)) < config.unidentified_gallery_fraction
        to_gallery = np.isin(groups, ugroups[pick]) & un
        subset[to_gallery] = "gallery"
    else:
        movies = np.unique(videos)
        if len(movies) < 2:
            raise UserError("--by movie needs at least 2 videos in the project")
        ids_per_movie = {int(m): len(np.unique(ident_vals[has_id & (videos == m)])) for m in movies}
        order = rng.permutation(movies)
        target = config.test_fraction * max(len(identities), 1)
        test_movies: list[int] = []
        count = 0
        for m in order:
            # add movies while that brings the test identity count closer to the target
            if test_movies and abs(count + ids_per_movie[int(m)] - target) >= abs(count - target):
                continue
            test_movies.append(int(m))
            count += ids_per_movie[int(m)]
        if len(test_movies) == len(movies):
            test_movies = test_movies[:-1]
        in_test_movie = np.isin(videos, test_movies)
        # identities are scoped to one video in the store; should one span movies anyway, all of
        # its crops go to test so that train and test identities stay disjoint
        is_test_id = has_id & np.isin(ident_vals, np.unique(ident_vals[has_id & in_test_movie]))
        subset[in_test_movie & ~has_id] = "gallery"

    subset[is_test_id] = "gallery"
    # queries: per test identity, one crop from each of up to q groups, leaving >= 1 group without any
    test_rows = np.flatnonzero(is_test_id)
    if len(test_rows):
        order = np.lexsort((groups[test_rows], ident_vals[test_rows]))
        rows = test_rows[order]
        ids_sorted = ident_vals[rows]
        bounds = np.flatnonzero(np.diff(ids_sorted)) + 1
        for block in np.split(rows, bounds):
            gids = groups[block]
            uniq_groups = np.unique(gids)
            if len(uniq_groups) < 2:
                continue
            # at most half of the identity's groups give a query, so the gallery keeps the larger share
            k = min(config.queries_per_identity, len(uniq_groups) // 2)
            chosen = rng.permutation(uniq_groups)[:k]
            for g in np.sort(chosen):
                members = block[gids == g]
                subset[members[rng.integers(len(members))]] = "query"
    return pd.Series(subset, index=pd.Index(df["crop_id"].to_numpy(dtype=np.int64), name="crop_id"), name="subset")


def summarize(df: pd.DataFrame, assignment: pd.Series) -> dict:
    """The paper's Table 2: images and identities per subset (identities over crops that have one)."""
    frame = df.set_index("crop_id").join(assignment.rename("subset"))
    out: dict[str, dict[str, int]] = {}
    for name in (*SUBSETS, "total"):
        part = frame if name == "total" else frame[frame["subset"] == name]
        ids = part["identity"].dropna()
        out[name] = {
            "images": int(len(part)),
            "identified_images": int(len(ids)),
            "ids": int(ids.nunique()),
        }
    return out


def format_summary(summary: dict) -> str:
    lines = [f"{'subset':<8} {'images':>9} {'with ID':>9} {'IDs':>6}"]
    for name in (*SUBSETS, "total"):
        row = summary[name]
        lines.append(f"{name:<8} {row['images']:>9,} {row['identified_images']:>9,} {row['ids']:>6,}")
    return "\n".join(lines)


def split_violations(df: pd.DataFrame, assignment: pd.Series | None = None, limit: int = 20) -> list[str]:
    """Check the split invariants; returns one line per violation (empty list: all hold).

    ``df`` has ``crop_id, identity, phash_group`` and either a ``subset`` column or ``assignment``
    (Series crop_id -> subset). Checks: valid subset names; train and test identities disjoint; no
    query without identity; query identities within gallery identities; every query has a gallery
    image of its identity outside its pHash group. Used by release verification.
    """
    frame = df.set_index("crop_id")
    if assignment is not None:
        frame = frame.drop(columns=["subset"], errors="ignore").join(assignment.rename("subset"))
    problems: list[str] = []
    bad = frame.loc[~frame["subset"].isin(SUBSETS), "subset"]
    if len(bad):
        problems.append(f"{len(bad)} crop(s) with an invalid subset, e.g. crop {bad.index[0]}: {bad.iloc[0]!r}")
    has_id = frame["identity"].notna()
    ids = frame.loc[has_id, "identity"].astype("int64")
    sub = frame.loc[has_id, "subset"]
    train_ids = set(ids[sub == "train"])
    test_ids = set(ids[sub.isin(("query", "gallery"))])
    both = sorted(train_ids & test_ids)
    if both:
        problems.append(f"{len(both)} identit(ies) in both train and test, e.g. {both[:5]}")
    nq = frame.index[~has_id & (frame["subset"] == "query")]
    if len(nq):
        problems.append(f"{len(nq)} query crop(s) without identity, e.g. crop {nq[0]}")
    query_ids = set(ids[sub == "query"])
    gallery_ids = set(ids[sub == "gallery"])
    missing = sorted(query_ids - gallery_ids)
    if missing:
        problems.append(f"{len(missing)} query identit(ies) absent from the gallery, e.g. {missing[:5]}")
    groups = pd.Series(_group_key(frame.reset_index()), index=frame.index)
    gal = frame.loc[has_id & (frame["subset"] == "gallery")]
    gal_groups: dict[int, set[int]] = {}
    for cid, ident in gal["identity"].astype("int64").items():
        gal_groups.setdefault(int(ident), set()).add(int(groups[cid]))
    lonely = []
    for cid, ident in frame.loc[has_id & (frame["subset"] == "query"), "identity"].astype("int64").items():
        if not (gal_groups.get(int(ident), set()) - {int(groups[cid])}):
            lonely.append(int(cid))
    if lonely:
        problems.append(f"{len(lonely)} query crop(s) without a gallery image of their identity outside "
                        f"their pHash group, e.g. crop {lonely[0]}")
    return problems[:limit]
