"""Per-subset label statistics (the paper's Table 3) and bar charts (its Figure 3)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from portrait_builder.stats.metrics import gini, imbalance_factor, lts

log = logging.getLogger(__name__)

STATS_SUBSETS = ("train", "query", "gallery", "all")


def _summary(classes: list[str], counts: list[int], k: float, *, interpolated: bool) -> dict:
    """``lts`` is the paper's LTS_k; ``lts_interpolated`` (attributes only, else None) the variant that
    stays in [0, 1] with a handful of classes, where the paper's whole-class count is coarse."""
    arr = np.asarray(counts, dtype=np.int64)
    def clean(v: float):
        return None if v != v else round(float(v), 6)  # NaN -> null in JSON

    return {
        "classes": len(classes),
        "samples": int(arr.sum()),
        "lts": clean(lts(arr, k)) if len(arr) else None,
        "lts_interpolated": clean(lts(arr, k, variant="interpolated")) if len(arr) and interpolated else None,
        "gini": clean(gini(arr)) if len(arr) else None,
        "imbalance": clean(imbalance_factor(arr)) if len(arr) else None,
        "counts": {c: int(n) for c, n in zip(classes, counts, strict=True)},
    }


def attribute_counts(values: pd.Series, attr) -> list[int]:
    """Counts of each class of ``attr`` (taxonomy order, 'unsure' excluded); lists count every element."""
    classes = attr.classes
    counter = dict.fromkeys(classes, 0)
    for v in values:
        if v is None or (isinstance(v, float) and v != v):
            continue
        items = v if isinstance(v, (list, tuple, np.ndarray)) else [v]
        for item in items:
            if item in counter:
                counter[item] += 1
    return [counter[c] for c in classes]


def dataset_stats(df: pd.DataFrame, taxonomy, k: float = 0.2) -> dict:
    """Statistics per subset ('train', 'query', 'gallery', 'all') of a :func:`project_frame` frame.

    ``identity``: over crops that have one, classes = identities present in the subset.
    Each other attribute: classes = its taxonomy values but 'unsure' (empty classes count as classes
    for LTS, as the paper's N is the number of classes), samples = crops labelled with a class
    (multi-label: each listed value counts once). Each entry has classes, samples, lts (the paper's
    LTS_k), lts_interpolated (attributes; None for identity, whose hundreds of classes make the two
    agree within 1 / (k N)), gini, imbalance and counts.
    """
    stats = StatsAccumulator(taxonomy, k)
    stats.add(df)
    return stats.result()


class StatsAccumulator:
    """:func:`dataset_stats` of the rows of several frames given one at a time (a release reads the
    store a chunk of crops at a time): only the class counts are kept between frames."""

    def __init__(self, taxonomy, k: float = 0.2):
        self.k = k
        self._attrs = [a for a in taxonomy.attributes if a.kind != "identity"]
        self._images = dict.fromkeys(STATS_SUBSETS, 0)
        self._identities: dict[str, Counter[int]] = {name: Counter() for name in STATS_SUBSETS}
        self._classes = {name: {a.name: [0] * len(a.classes) for a in self._attrs} for name in STATS_SUBSETS}

    def add(self, df: pd.DataFrame) -> None:
        for name in STATS_SUBSETS:
            part = df if name == "all" else df[df["subset"] == name]
            self._images[name] += int(len(part))
            vc = part["identity"].dropna().astype(np.int64).value_counts()
            self._identities[name].update(dict(zip(vc.index.tolist(), vc.tolist(), strict=True)))
            for attr in self._attrs:
                col = part[attr.name] if attr.name in part.columns else pd.Series([], dtype=object)
                total = self._classes[name][attr.name]
                for i, n in enumerate(attribute_counts(col, attr)):
                    total[i] += n

    def result(self) -> dict:
        out: dict = {"k": self.k, "subsets": {}}
        for name in STATS_SUBSETS:
            entry: dict = {"images": self._images[name]}
            ids = sorted(self._identities[name].items())  # by identity id
            entry["identity"] = _summary([str(i) for i, _ in ids], [n for _, n in ids], self.k, interpolated=False)
            for attr in self._attrs:
                entry[attr.name] = _summary(list(attr.classes), self._classes[name][attr.name], self.k,
                                            interpolated=True)
            out["subsets"][name] = entry
        return out


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def format_table(stats: dict, markdown: bool = False) -> str:
    """Table-3-like text: one row per (task, subset) with classes, samples, LTS_k (the paper's), the
    interpolated LTS_k (attributes; '-' for identity), Gini, imbalance."""
    k = stats["k"]
    header = ["task", "subset", "classes", "samples", f"LTS_{k:g}", f"LTS_{k:g} interp.", "Gini", "IF"]
    rows = []
    tasks = [t for t in next(iter(stats["subsets"].values())).keys() if t != "images"]
    for task in tasks:
        for subset, entry in stats["subsets"].items():
            e = entry[task]
            rows.append([task, subset, str(e["classes"]), f"{e['samples']:,}", _fmt(e["lts"]),
                         _fmt(e.get("lts_interpolated")), _fmt(e["gini"]),
                         "-" if e["imbalance"] is None else f"{e['imbalance']:.1f}"])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    fmt = lambda r: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))  # noqa: E731
    return "\n".join([fmt(header)] + [fmt(r) for r in rows])


def write_stats(stats: dict, out_dir: str | Path) -> list[Path]:
    """Write stats.json, stats.md (the table) and one bar chart PNG per task (Figure 3 style:
    class sizes sorted largest first, one panel per subset). Returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    (out / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "stats.md").write_text(format_table(stats, markdown=True) + "\n", encoding="utf-8")
    written += [out / "stats.json", out / "stats.md"]
    subsets = [s for s in stats["subsets"] if s != "all"] + ["all"]
    tasks = [t for t in stats["subsets"]["all"].keys() if t != "images"]
    for task in tasks:
        fig, axes = plt.subplots(1, len(subsets), figsize=(4 * len(subsets), 3.2), squeeze=False)
        for ax, subset in zip(axes[0], subsets, strict=True):
            e = stats["subsets"][subset][task]
            items = sorted(e["counts"].items(), key=lambda kv: -kv[1])
            labels = [c for c, _ in items]
            values = [v for _, v in items]
            if len(values) <= 60:
                ax.bar(range(len(values)), values, color="#4C72B0")
            else:  # hundreds of identities: one filled step artist instead of one rectangle per class
                ax.fill_between(range(len(values)), values, step="mid", color="#4C72B0", linewidth=0)
            if task != "identity" and len(labels) <= 12:
                ax.set_xticks(range(len(labels)))
                ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
            else:
                ax.set_xticks([])
                ax.set_xlabel(f"{len(labels)} classes, largest first", fontsize=8)
            lts_v = "-" if e["lts"] is None else f"{e['lts']:.3f}"
            if e.get("lts_interpolated") is not None:
                lts_v += f" (interp. {e['lts_interpolated']:.3f})"
            ax.set_title(f"{subset}: n={e['samples']:,}, LTS={lts_v}", fontsize=9)
        fig.suptitle(task)
        # Fixed margins instead of tight_layout: tight_layout draws the figure once more just to
        # measure it, which doubled the cost of every release (8 charts).
        fig.subplots_adjust(left=0.05, right=0.99, bottom=0.3, top=0.82, wspace=0.25)
        path = out / f"{task}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
