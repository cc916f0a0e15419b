"""Open a release folder: THE reader of releases for the baseline, the evaluation and the integrations.

``load_release`` is cheap: it reads ``manifest.json``, ``taxonomy.yaml`` and ``annotations.parquet`` and
checks what every consumer relies on (the manifest's schema version, the annotation columns, the subset
names). It never hashes the crops; ``verify=True`` runs the full :func:`verify_release` (sha256 of every
file, naming, split invariants) first and refuses a release with any problem.

A folder without ``manifest.json`` (a hand-made or converted dataset, e.g. Portrait250K itself, with only
``annotations.parquet``, ``taxonomy.yaml`` and the crops) is not a release and is refused by default.
``require_manifest=False`` reads it as an *unversioned* folder: ``manifest`` is ``{}``, ``version`` is
``None``, a missing ``taxonomy.yaml`` means the default taxonomy and a missing attribute column means
"unlabelled". The baseline (``portrait train`` / ``evaluate``) and the re-id integrations pass it, since
they need only the annotation contract; ``diff_releases`` and ``portrait release`` need a real release.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from portrait_builder.errors import UserError
from portrait_builder.release import manifest as mf
from portrait_builder.release import records
from portrait_builder.release.records import read_annotations
from portrait_builder.release.verify import verify_release
from portrait_builder.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)

ANNOTATIONS_NAME = "annotations.parquet"
TAXONOMY_NAME = "taxonomy.yaml"
# Columns every consumer reads; the other contract columns (video, box, phash, ...) are optional for
# unversioned folders (a written release always has the whole contract, which verify_release checks).
REQUIRED_COLUMNS = ("crop_id", "file", "subset", "identity", "group")


@dataclass(frozen=True)
class Release:
    """A release as the baseline and the integrations read it.

    ``annotations`` is annotations.parquet with ``identity``/``group`` as pandas ``Int64`` (null = no
    identity / no group), single-label attributes as value names ("unsure" kept, None = unlabelled),
    multi-label cells as Python lists (or None) and ``<attribute>_provenance`` columns (how each label
    came about: clicked, accepted, propagated, inherited, imported, merged; None = unlabelled).
    ``manifest`` is ``{}`` for an unversioned folder. ``has_provenance`` is False for a release written
    before labels carried their provenance: its provenance columns are added, all None (unknown).
    """

    root: Path
    annotations: pd.DataFrame
    taxonomy: Taxonomy
    manifest: dict
    has_provenance: bool = True

    @property
    def version(self) -> str | None:
        """The release's semantic version; None for an unversioned folder (no manifest)."""
        return self.manifest.get("version")

    def path(self, file: str) -> Path:
        """The absolute-or-root-relative path of an ``annotations["file"]`` entry."""
        return self.root / file

    def subset(self, *names: str) -> pd.DataFrame:
        """The rows of the given subsets (train / query / gallery), in file order, index 0..n-1."""
        bad = sorted(set(names) - set(records.SUBSETS))
        if bad:
            raise ValueError(f"unknown subset {bad[0]!r}; valid: {', '.join(records.SUBSETS)}")
        df = self.annotations
        return df[df["subset"].isin(names)].reset_index(drop=True)


def _read_manifest(root: Path) -> dict:
    path = root / mf.MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{path} is not a release manifest (not a JSON object)")
    version = manifest.get("schema_version")
    if version != mf.MANIFEST_SCHEMA_VERSION:
        raise UserError(
            f"{path} has schema_version {version!r}; this portrait-builder reads {mf.MANIFEST_SCHEMA_VERSION}"
        )
    return manifest


def load_release(
    root: str | Path, *, require_manifest: bool = True, verify: bool = False, progress: bool = False
) -> Release:
    """Open the release at ``root`` (see the module docstring for what is checked).

    require_manifest=False also accepts an unversioned folder (annotations.parquet [+ taxonomy.yaml]).
    verify=True first runs :func:`verify_release` (reads every file; ``progress`` shows a bar) and
    raises a UserError naming the first problem. Bad input raises a one-line UserError.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"release folder not found: {root}")
    has_manifest = (root / mf.MANIFEST_NAME).is_file()
    if not has_manifest and require_manifest:
        raise UserError(f"{root} is not a release (no {mf.MANIFEST_NAME}); releases are written by `portrait release`")
    if verify:
        if not has_manifest:
            raise UserError(f"cannot verify {root}: no {mf.MANIFEST_NAME}")
        problems = verify_release(root, progress=progress)
        if problems:
            more = f" (and {len(problems) - 1} more; run `portrait release verify {root}`)" if len(problems) > 1 else ""
            raise UserError(f"release {root} fails verification: {problems[0]}{more}")
    manifest = _read_manifest(root) if has_manifest else {}
    if not has_manifest:
        log.info("%s has no %s: reading it as an unversioned folder (not verifiable)", root, mf.MANIFEST_NAME)

    taxonomy_path = root / TAXONOMY_NAME
    if taxonomy_path.is_file():
        taxonomy = load_taxonomy(taxonomy_path)
    elif has_manifest:
        raise UserError(f"release {root} lacks {TAXONOMY_NAME}")
    else:
        log.warning("%s has no %s; using the default taxonomy", root, TAXONOMY_NAME)
        taxonomy = load_taxonomy(None)

    parquet = root / ANNOTATIONS_NAME
    if not parquet.is_file():
        raise UserError(f"{root} is not a release folder (no {ANNOTATIONS_NAME})")
    try:
        df = read_annotations(parquet, taxonomy)
    except Exception as exc:  # pyarrow raises several types for a damaged file; the user needs one line
        raise UserError(
            f"{parquet} cannot be read: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{parquet} lacks column(s) {', '.join(missing)}")
    bad = sorted(set(df["subset"].astype(str).unique()) - set(records.SUBSETS))
    if bad:
        raise UserError(f"{parquet}: unknown subset value(s) {bad}; valid: {', '.join(records.SUBSETS)}")
    absent = [a.name for a in taxonomy.attributes if a.kind != "identity" and a.name not in df.columns]
    if absent and has_manifest:
        raise UserError(f"{parquet} lacks attribute column(s) {', '.join(absent)} of its taxonomy")
    for name in absent:
        log.warning("%s has no %s column; treating it as unlabelled", root, name)
        df[name] = None
    provenance = records.provenance_columns(taxonomy)
    lacking = [c for c in provenance if c not in df.columns]
    if lacking:
        log.info("%s has no provenance column(s) %s (written before labels carried it); provenance unknown",
                 root, ", ".join(lacking))
        for name in lacking:
            df[name] = None
    return Release(root, df, taxonomy, manifest, has_provenance=not lacking)
