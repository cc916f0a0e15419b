"""Identity-disjoint train / query / gallery splits.

Public API: :class:`SplitConfig`, :func:`split_crops` (pure), :func:`split_project` (store),
:func:`summarize` / :func:`format_summary` (the paper's Table 2), :func:`read_split`,
:func:`split_violations` (invariant check, for release verification).
"""

from portrait_builder.split.core import (
    BY,
    DEFAULT_QUERIES_PER_IDENTITY,
    DEFAULT_TEST_FRACTION,
    SUBSETS,
    SplitConfig,
    format_summary,
    split_crops,
    split_violations,
    summarize,
)
from portrait_builder.split.store import crops_for_split, read_split, split_project, split_setting_key

__all__ = [
    "BY",
    "DEFAULT_QUERIES_PER_IDENTITY",
    "DEFAULT_TEST_FRACTION",
    "SUBSETS",
    "SplitConfig",
    "crops_for_split",
    "format_summary",
    "read_split",
    "split_crops",
    "split_project",
    "split_setting_key",
    "split_violations",
    "summarize",
]
