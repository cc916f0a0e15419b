"""PIQ, the Portrait Interpretation Quality score of the paper: the mean of four aspect scores.

PIQ = (ReID + App + Pos + Emo) / 4 with ReID = (Macro Rank-1 + Macro mAP) / 2, App = mean F1 of
gender, age, physique, height; Pos = mean F1 of body and arm posture; Emo = F1 of expression.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

DEFAULT_ASPECTS: dict[str, tuple[str, ...]] = {
    "App": ("gender", "age", "physique", "height"),
    "Pos": ("body_posture", "arm_posture"),
    "Emo": ("expression",),
}


def _mean(values: list[float]) -> float:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return sum(present) / len(present) if present else float("nan")


def piq(
    rank1: float,
    mAP: float,
    f1: Mapping[str, float],
    aspects: Mapping[str, Sequence[str]] = DEFAULT_ASPECTS,
) -> dict[str, float]:
    """The PIQ score and its parts from macro rank-1, macro mAP and the macro F1 per attribute.

    Scores are fractions in [0, 1]. An attribute missing from ``f1`` (or NaN: no labelled test crop)
    is left out of its aspect's mean; an aspect with no attribute at all is NaN, and so is PIQ.
    Returns {"ReID", "App", "Pos", "Emo", "PIQ"} (aspect keys follow ``aspects``).
    """
    out = {"ReID": _mean([rank1, mAP]) if not (math.isnan(rank1) or math.isnan(mAP)) else float("nan")}
    for aspect, names in aspects.items():
        out[aspect] = _mean([f1.get(name, float("nan")) for name in names])
    parts = list(out.values())
    out["PIQ"] = float("nan") if any(math.isnan(v) for v in parts) else sum(parts) / len(parts)
    return out
