"""Versioned dataset releases: write (Market-1501 layout + Parquet + manifest), load, verify, diff; label export/import.

Public API::

    write_release(project, version, out_dir, config=ReleaseConfig()) -> Path
    release_counts(project, version) -> dict  # the manifest's counts, from the store (no manifest read)
    load_release(dir, *, require_manifest=True, verify=False) -> Release
        # THE reader: root, annotations, taxonomy, manifest, version, subset(), path(); cheap checks only
    verify_release(dir) -> list[str]        # problems, one line each; [] = verified
    diff_releases(a, b) -> dict
    export_labels(project, out) -> int      # rows written (.csv or .parquet)
    import_labels(project, file) -> int     # labels added; LabelImportError lists every bad row
"""

from portrait_builder.release.diff import diff_releases
from portrait_builder.release.labels_io import LabelImportError, export_labels, import_labels
from portrait_builder.release.naming import SUBSET_DIRS, parse_name
from portrait_builder.release.reader import Release, load_release
from portrait_builder.release.verify import split_problems, verify_release
from portrait_builder.release.writer import ReleaseConfig, release_counts, write_release

__all__ = [
    "SUBSET_DIRS",
    "LabelImportError",
    "Release",
    "ReleaseConfig",
    "diff_releases",
    "export_labels",
    "import_labels",
    "load_release",
    "parse_name",
    "release_counts",
    "split_problems",
    "verify_release",
    "write_release",
]
