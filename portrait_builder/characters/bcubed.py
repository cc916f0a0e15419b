"""BCubed precision and recall of a clustering against reference classes (Amigo et al. 2009).

For an item e with cluster C(e) and class L(e): precision(e) is the share of the items in C(e) that
share L(e), recall(e) the share of the items of class L(e) that lie in C(e); BCubed precision and
recall average these over the items, and F is their harmonic mean (van Rijsbergen's F, alpha = 0.5).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence


def bcubed(clusters: Sequence[Hashable], classes: Sequence[Hashable]) -> tuple[float, float, float]:
    """(precision, recall, F) of ``clusters`` (N,) against reference ``classes`` (N,), one entry per item.

    Computed from the contingency counts n(c, l): precision = 1/N sum n(c,l)^2 / n(c), recall =
    1/N sum n(c,l)^2 / n(l), the per-item definition summed by (cluster, class) cell. Empty input: (1, 1, 1).
    """
    if len(clusters) != len(classes):
        raise ValueError(f"bcubed: {len(clusters)} cluster labels but {len(classes)} class labels")
    n = len(clusters)
    if n == 0:
        return 1.0, 1.0, 1.0
    cells = Counter(zip(clusters, classes, strict=True))
    size_c, size_l = Counter(clusters), Counter(classes)
    precision = sum(k * k / size_c[c] for (c, _), k in cells.items()) / n
    recall = sum(k * k / size_l[lab] for (_, lab), k in cells.items()) / n
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f
