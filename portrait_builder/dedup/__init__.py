"""Perceptual hashes of crops and near-duplicate groups (the paper's "similar frames"; docs/dataset.md).

Public API: :func:`phash_files`, :func:`group_hashes`, :func:`hash_project`, :func:`group_project`,
:func:`to_signed` / :func:`to_unsigned` (uint64 hash <-> the store's signed BIGINT), :data:`DEFAULT_THRESHOLD`.
"""

from portrait_builder.dedup.groups import DEFAULT_THRESHOLD, brute_force_groups, group_hashes, hamming, popcount64
from portrait_builder.dedup.phash import hash_to_hex, hex_to_hash, phash_files, to_signed, to_unsigned
from portrait_builder.dedup.store import GROUPS_SETTING, GroupReport, HashReport, group_project, hash_project

__all__ = [
    "DEFAULT_THRESHOLD",
    "GROUPS_SETTING",
    "GroupReport",
    "HashReport",
    "brute_force_groups",
    "group_hashes",
    "group_project",
    "hamming",
    "hash_project",
    "hash_to_hex",
    "hex_to_hash",
    "phash_files",
    "popcount64",
    "to_signed",
    "to_unsigned",
]
