"""Hypothesis property tests: every invariant of the split holds for arbitrary crop tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portrait_builder.errors import UserError
from portrait_builder.split import SplitConfig, split_crops


@st.composite
def crop_tables(draw, min_videos: int = 1):
    """Crop tables shaped like a store: identities scoped to a video, pHash groups that may span
    identities, crops without identity and crops without group."""
    n_videos = draw(st.integers(min_videos, 5))
    rows = []
    next_identity = 1
    crop_id = draw(st.integers(1, 1000))
    for v in range(1, n_videos + 1):
        n_ids = draw(st.integers(0, 6))
        idents = list(range(next_identity, next_identity + n_ids))
        next_identity += n_ids
        n_crops = draw(st.integers(0, 25))
        for _ in range(n_crops):
            ident = draw(st.sampled_from([None, *idents])) if idents else None
            group = draw(st.one_of(st.none(), st.integers(1, 12)))
            rows.append((crop_id, ident, v, None if group is None else group + 100 * v * draw(st.integers(0, 1))))
            crop_id += draw(st.integers(1, 3))
    df = pd.DataFrame(rows, columns=["crop_id", "identity", "video_id", "phash_group"])
    df["identity"] = pd.array(df["identity"], dtype="Int64")
    df["phash_group"] = pd.array(df["phash_group"], dtype="Int64")
    df["video_id"] = df["video_id"].astype(np.int64)
    df["crop_id"] = df["crop_id"].astype(np.int64)
    return df


configs = st.builds(
    SplitConfig,
    seed=st.integers(0, 2**31),
    by=st.just("identity"),
    test_fraction=st.floats(0.05, 0.95),
    queries_per_identity=st.integers(1, 5),
    unidentified_gallery_fraction=st.floats(0.0, 1.0),
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_invariants(df: pd.DataFrame, a: pd.Series) -> None:
    frame = df.set_index("crop_id").join(a.rename("subset"))
    # every crop gets exactly one valid subset
    assert a.index.is_unique and set(a.index) == set(df["crop_id"])
    assert set(a.unique()) <= {"train", "query", "gallery"}
    ided = frame[frame["identity"].notna()]
    train_ids = set(ided.loc[ided["subset"] == "train", "identity"])
    test_ids = set(ided.loc[ided["subset"] != "train", "identity"])
    query_ids = set(ided.loc[ided["subset"] == "query", "identity"])
    gallery_ids = set(ided.loc[ided["subset"] == "gallery", "identity"])
    assert not (train_ids & test_ids), "train and test identities overlap"
    assert query_ids <= gallery_ids, "a query identity is missing from the gallery"
    # crops without identity never become queries
    assert not ((frame["identity"].isna()) & (frame["subset"] == "query")).any()
    # every query has a gallery image of its identity outside its own pHash group
    group = frame["phash_group"].astype("float").fillna(-1 - frame.index.to_series().astype(float))
    for cid, row in frame[frame["subset"] == "query"].iterrows():
        same = frame[(frame["identity"] == row["identity"]) & (frame["subset"] == "gallery")]
        assert (group[same.index] != group[cid]).any(), f"query {cid} has no gallery match outside its group"


@SETTINGS
@given(df=crop_tables(), config=configs)
def test_invariants_by_identity(df, config):
    check_invariants(df, split_crops(df, config))


@SETTINGS
@given(df=crop_tables(min_videos=2), config=configs)
def test_invariants_by_movie_and_whole_movies(df, config):
    config = SplitConfig(seed=config.seed, by="movie", test_fraction=config.test_fraction,
                         queries_per_identity=config.queries_per_identity)
    if df["video_id"].nunique() < 2:
        with pytest.raises(UserError, match="at least 2 videos"):
            split_crops(df, config)
        return
    a = split_crops(df, config)
    check_invariants(df, a)
    frame = df.set_index("crop_id").join(a.rename("subset"))
    side = frame["subset"].map({"train": "train", "query": "test", "gallery": "test"})
    assert (side.groupby(frame["video_id"]).nunique() == 1).all(), "a movie was cut in two"
    assert set(side) == {"train", "test"}, "both sides get at least one movie"


@SETTINGS
@given(df=crop_tables(), config=configs, perm_seed=st.integers(0, 1000))
def test_deterministic_for_a_seed_and_independent_of_row_order(df, config, perm_seed):
    a = split_crops(df, config)
    shuffled = df.sample(frac=1.0, random_state=perm_seed)
    b = split_crops(shuffled, config)
    assert a.equals(b)
    assert a.index.is_monotonic_increasing


@SETTINGS
@given(df=crop_tables(), config=configs)
def test_identities_with_two_groups_give_queries_capped(df, config):
    a = split_crops(df, config)
    frame = df.set_index("crop_id").join(a.rename("subset"))
    test = frame[frame["identity"].notna() & (frame["subset"] != "train")]
    group = test["phash_group"].astype("float").fillna(-1 - test.index.to_series().astype(float))
    for ident, part in test.groupby("identity"):
        n_groups = group[part.index].nunique()
        n_queries = int((part["subset"] == "query").sum())
        assert n_queries == min(config.queries_per_identity, n_groups // 2), ident
        # at most one query per group
        q = part[part["subset"] == "query"]
        assert group[q.index].is_unique


def test_identity_split_sizes_follow_the_test_fraction():
    rng = np.random.default_rng(0)
    n = 20000
    ident = rng.integers(1, 1067, n)
    df = pd.DataFrame({"crop_id": np.arange(n), "identity": pd.array(ident, dtype="Int64"),
                       "video_id": ident // 50, "phash_group": pd.array(np.arange(n) // 3, dtype="Int64")})
    a = split_crops(df, SplitConfig(seed=3))
    test_ids = df.loc[a.to_numpy() != "train", "identity"].nunique()
    assert test_ids == round(1066 * 426 / 1066)  # the paper's 426 test identities of 1,066


def test_bad_configs_are_user_errors():
    with pytest.raises(UserError, match="valid: identity, movie"):
        SplitConfig(by="camera")
    with pytest.raises(UserError, match="between 0 and 1"):
        SplitConfig(test_fraction=1.0)
    with pytest.raises(UserError, match="at least 1"):
        SplitConfig(queries_per_identity=0)
    with pytest.raises(ValueError, match="missing phash_group"):
        split_crops(pd.DataFrame({"crop_id": [1], "identity": [1], "video_id": [1]}), SplitConfig())


@SETTINGS
@given(df=crop_tables(), config=configs)
def test_split_violations_accepts_our_splits(df, config):
    from portrait_builder.split import split_violations

    assert split_violations(df, split_crops(df, config)) == []


def test_split_violations_reports_each_broken_invariant():
    from portrait_builder.split import split_violations

    df = pd.DataFrame({
        "crop_id": [1, 2, 3, 4, 5, 6],
        "identity": pd.array([1, 1, 2, 2, None, 3], dtype="Int64"),
        "video_id": [1] * 6,
        "phash_group": pd.array([10, 10, 20, 21, None, 30], dtype="Int64"),
    })
    ok = pd.Series(["query", "gallery", "train", "train", "gallery", "train"], index=df["crop_id"])
    problems = split_violations(df, ok)
    assert len(problems) == 1 and "outside their pHash group" in problems[0]  # crop 2 is in crop 1's group
    broken = pd.Series(["query", "train", "gallery", "train", "query", "bogus"], index=df["crop_id"])
    text = "\n".join(split_violations(df, broken))
    for needle in ("invalid subset", "both train and test", "without identity", "absent from the gallery"):
        assert needle in text, needle
