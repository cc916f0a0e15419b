"""Dataset statistics: long-tail measures (LTS_k, Gini, imbalance factor), the per-crop project frame,
Table-3-like tables and Figure-3-like bar charts.

Public API: :func:`lts`, :func:`gini`, :func:`imbalance_factor`, :func:`project_frame`,
:func:`dataset_stats`, :func:`format_table`, :func:`write_stats`.
"""

from portrait_builder.stats.frame import FRAME_COLUMNS, project_frame
from portrait_builder.stats.metrics import LTS_VARIANTS, gini, imbalance_factor, lts
from portrait_builder.stats.tables import STATS_SUBSETS, attribute_counts, dataset_stats, format_table, write_stats

__all__ = [
    "FRAME_COLUMNS",
    "LTS_VARIANTS",
    "STATS_SUBSETS",
    "attribute_counts",
    "dataset_stats",
    "format_table",
    "gini",
    "imbalance_factor",
    "lts",
    "project_frame",
    "write_stats",
]
