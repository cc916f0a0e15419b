"""Evaluation metrics of the Portrait Interpretation benchmark: re-id CMC/mAP (macro and micro, with
pHash-group exclusion), macro F1 per attribute and the PIQ summary score."""

from portrait_builder.evaluate.classification import macro_f1
from portrait_builder.evaluate.piq import DEFAULT_ASPECTS, piq
from portrait_builder.evaluate.reid import (
    QueryRanks,
    feature_distances,
    query_ranks,
    query_ranks_from_features,
    reid_metrics,
    reid_metrics_from_features,
)

__all__ = [
    "DEFAULT_ASPECTS",
    "QueryRanks",
    "feature_distances",
    "macro_f1",
    "piq",
    "query_ranks",
    "query_ranks_from_features",
    "reid_metrics",
    "reid_metrics_from_features",
]
