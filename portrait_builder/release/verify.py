"""Verify a release folder: checksums, schemas, naming and the split's invariants (reading is in ``reader``)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from portrait_builder.errors import UserError
from portrait_builder.release import manifest as mf
from portrait_builder.release import naming, records
from portrait_builder.release.records import read_annotations
from portrait_builder.store.labels import PROVENANCES
from portrait_builder.taxonomy import Taxonomy, load_taxonomy

JSON_SCHEMA_SAMPLE_ROWS = 2000  # rows checked one by one with jsonschema; every row gets the vectorised checks
MAX_LISTED = 20  # problems of one kind listed before "... and N more"


def _listed(kind: str, items: list[str]) -> list[str]:
    out = [f"{kind}: {i}" for i in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        out.append(f"{kind}: ... and {len(items) - MAX_LISTED} more")
    return out


def _check_files(root: Path, manifest: dict, progress: bool) -> list[str]:
    listed = manifest.get("files", {})
    present = set(mf.release_files(root))
    problems = _listed("missing file", sorted(set(listed) - present))
    problems += _listed("file not in the manifest", sorted(present - set(listed)))
    common = sorted(present & set(listed))
    actual = mf.checksums(root, common, progress=progress, desc="verify sha256")
    problems += _listed("checksum mismatch", [f for f in common if actual[f] != listed[f]])
    return problems


def _check_table(df: pd.DataFrame, taxonomy: Taxonomy, manifest: dict) -> list[str]:
    problems: list[str] = []
    expected = records.arrow_schema(taxonomy)
    names = list(df.columns)
    # releases written before labels carried their provenance lack the *_provenance columns, and verify
    legacy = records.arrow_schema(taxonomy, provenance=False)
    if names != expected.names and names != legacy.names:
        return [f"annotations.parquet: columns {names} differ from the contract {expected.names}"]
    sample = df.head(JSON_SCHEMA_SAMPLE_ROWS).astype(object).where(df.head(JSON_SCHEMA_SAMPLE_ROWS).notna(), None)
    schema = mf.annotations_schema()
    for i, row in enumerate(sample.to_dict("records")):
        for p in mf.schema_problems(row, schema, f"annotations row {i}", limit=1):
            problems.append(p)
        if len(problems) >= MAX_LISTED:
            return problems
    if df["crop_id"].duplicated().any():
        problems.append(f"annotations: duplicate crop ids, e.g. {int(df.loc[df['crop_id'].duplicated(), 'crop_id'].iloc[0])}")
    if df["file"].duplicated().any():
        problems.append(f"annotations: duplicate files, e.g. {df.loc[df['file'].duplicated(), 'file'].iloc[0]}")
    pid_max = len(manifest.get("identities", []))
    cams = {v["cam"]: v["video_id"] for v in manifest.get("videos", [])}
    bad_names = []
    for file, subset, identity, video_id, frame in zip(
        df["file"], df["subset"], df["identity"], df["video_id"], df["frame"], strict=True
    ):
        folder, _, name = file.partition("/")
        try:
            parsed = naming.parse_name(name)
        except ValueError:
            bad_names.append(f"{file} (not a release name)")
            continue
        want_pid = int(identity) if not pd.isna(identity) else (naming.NO_ID_TRAIN if subset == "train" else naming.DISTRACTOR)
        if naming.DIR_SUBSETS.get(folder) != subset:
            bad_names.append(f"{file} (folder does not match subset {subset})")
        elif parsed.pid != want_pid:
            bad_names.append(f"{file} (pid {parsed.pid} but identity {want_pid})")
        elif cams.get(parsed.cam) != int(video_id) or parsed.frame != int(frame):
            bad_names.append(f"{file} (cam/frame do not match video {int(video_id)} frame {int(frame)})")
        elif not pd.isna(identity) and not 1 <= int(identity) <= pid_max:
            bad_names.append(f"{file} (identity {int(identity)} outside 1..{pid_max})")
    problems += _listed("bad file name", bad_names)
    for attr in taxonomy.attributes:
        if attr.kind == "identity":
            continue
        col = df[attr.name].dropna()
        values = col.explode() if attr.multilabel else col
        bad = sorted(set(values.dropna()) - set(attr.value_names))
        if bad:
            problems.append(f"annotations: invalid value {bad[0]!r} for {attr.name}")
    if names == expected.names:
        problems += _provenance_problems(df, taxonomy)
    return problems


def _provenance_problems(df: pd.DataFrame, taxonomy: Taxonomy) -> list[str]:
    """Provenance values are known ones, and a label has a provenance exactly when it has a value
    (identity aside: a crop labelled 'unknown' has no release identity but a provenance)."""
    problems = []
    for attr in taxonomy.attributes:
        column = records.provenance_column(attr.name)
        bad = sorted(set(df[column].dropna()) - set(PROVENANCES))
        if bad:
            problems.append(f"annotations: invalid provenance {bad[0]!r} in {column}; valid: {', '.join(PROVENANCES)}")
        if attr.kind == "identity":
            continue
        has_value, has_provenance = df[attr.name].notna(), df[column].notna()
        orphan = df.loc[has_provenance & ~has_value, "crop_id"]
        if len(orphan):
            problems.append(f"annotations: {len(orphan)} crops have {column} but no {attr.name} "
                            f"(e.g. crop {int(orphan.iloc[0])})")
        unknown = df.loc[has_value & ~has_provenance, "crop_id"]
        if len(unknown):
            problems.append(f"annotations: {len(unknown)} crops have {attr.name} but no {column} "
                            f"(e.g. crop {int(unknown.iloc[0])})")
    return problems


def split_problems(df: pd.DataFrame) -> list[str]:
    """The split's invariants on an annotation table (subset, identity, group columns)."""
    problems = []
    ids = {s: set(df.loc[(df["subset"] == s) & df["identity"].notna(), "identity"].astype(int)) for s in records.SUBSETS}
    shared = sorted(ids["train"] & (ids["query"] | ids["gallery"]))
    if shared:
        problems.append(f"split: {len(shared)} identities are in train and test (e.g. {shared[0]})")
    orphan = sorted(ids["query"] - ids["gallery"])
    if orphan:
        problems.append(f"split: {len(orphan)} query identities have no gallery image (e.g. {orphan[0]})")
    query = df[df["subset"] == "query"]
    no_id = query[query["identity"].isna()]
    if len(no_id):
        problems.append(f"split: {len(no_id)} query crops have no identity (e.g. crop {int(no_id['crop_id'].iloc[0])})")
    query = query[query["identity"].notna()]
    gallery = df[(df["subset"] == "gallery") & df["identity"].notna()]
    per_id = gallery.groupby("identity").size()
    per_id_group = gallery.dropna(subset=["group"]).groupby(["identity", "group"]).size()
    stranded = []
    for crop_id, identity, group in zip(query["crop_id"], query["identity"], query["group"], strict=True):
        total = int(per_id.get(identity, 0))
        same = 0 if pd.isna(group) else int(per_id_group.get((identity, group), 0))
        if total - same <= 0 and identity not in orphan:
            stranded.append(int(crop_id))
    if stranded:
        problems.append(
            f"split: {len(stranded)} query crops have no gallery image of their identity outside their group "
            f"(e.g. crop {stranded[0]})"
        )
    return problems


def _check_counts(df: pd.DataFrame, manifest: dict) -> list[str]:
    counts = manifest.get("counts", {})
    problems = []
    if counts.get("crops") != len(df):
        problems.append(f"counts: manifest says {counts.get('crops')} crops, annotations have {len(df)}")
    for s in records.SUBSETS:
        n = int((df["subset"] == s).sum())
        want = counts.get("subsets", {}).get(s, {}).get("images")
        if want != n:
            problems.append(f"counts: manifest says {want} {s} images, annotations have {n}")
    return problems


def verify_release(root: str | Path, *, progress: bool = False) -> list[str]:
    """Every problem found in the release at ``root``, one line each; an empty list means it verifies."""
    root = Path(root)
    manifest_path = root / mf.MANIFEST_NAME
    if not manifest_path.is_file():
        return [f"{root} is not a release: no {mf.MANIFEST_NAME}"]
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [f"{mf.MANIFEST_NAME} is not valid JSON: {exc}"]
    schema = mf.manifest_schema()
    view = mf.validation_view(manifest, schema) if isinstance(manifest, dict) else manifest
    problems = mf.schema_problems(view, schema, mf.MANIFEST_NAME)
    if not isinstance(manifest, dict):
        return problems
    problems += _check_files(root, manifest, progress)
    try:
        taxonomy = load_taxonomy(root / "taxonomy.yaml")
    except UserError as exc:
        return [*problems, f"taxonomy.yaml: {exc}"]
    try:
        df = read_annotations(root / "annotations.parquet", taxonomy)
    except Exception as exc:  # any unreadable parquet is a verification failure, not a crash
        return [*problems, f"annotations.parquet cannot be read: {exc}"]
    table_problems = _check_table(df, taxonomy, manifest)
    problems += table_problems
    if table_problems and table_problems[0].startswith("annotations.parquet: columns"):
        return problems
    listed_images = {f for f in manifest.get("files", {}) if f.split("/")[0] in naming.DIR_SUBSETS}
    files = set(df["file"])
    problems += _listed("image not in annotations", sorted(listed_images - files))
    problems += _listed("annotated file not in the manifest", sorted(files - listed_images))
    problems += _check_counts(df, manifest)
    problems += split_problems(df)
    return problems
