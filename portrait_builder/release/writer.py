"""Write an immutable, versioned release folder from a project (Market-1501 layout + Parquet + manifest).

The release is built in a hidden temporary sibling of the output folder and renamed into place at the
end, so a crash never leaves a half-written release under the final name; an existing folder is never
overwritten. Crops are hard-linked from the project (copied when the file system refuses links).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from tqdm import tqdm

from portrait_builder import __version__
from portrait_builder.common import file_digest
from portrait_builder.errors import UserError
from portrait_builder.release import datasheet, manifest, records
from portrait_builder.release.naming import SUBSET_DIRS
from portrait_builder.store.models import CurrentLabel, Label, Setting, Track, Video
from portrait_builder.store.models import Release as ReleaseRow

log = logging.getLogger(__name__)

VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")
LINK_MODES = ("auto", "hardlink", "copy")
# Settings that shape a release, recorded in its manifest: the grouping (threshold, within-video) written
# by `portrait groups`, and the split's configuration and summary written by `portrait split`.
GROUPS_SETTING = "phash_groups"


def _split_setting(name: str) -> str:
    return f"split:{name}"


@dataclass(frozen=True)
class ReleaseConfig:
    """What a release is cut from. ``split`` and ``k`` go into the manifest; ``link`` and
    ``progress`` change how, not what, is written, so they do not."""

    split: str = "default"
    k: float = 0.2
    link: str = "auto"  # auto: hard link, copy when the file system refuses; hardlink: links only; copy
    progress: bool = True

    def __post_init__(self):
        if self.link not in LINK_MODES:
            raise UserError(f"unknown link mode {self.link!r}; valid: {', '.join(LINK_MODES)}")
        if not 0 < self.k < 1:
            raise UserError(f"k must be in (0, 1), got {self.k}")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, pd.DataFrame):
        return obj.to_dict(orient="records")
    if isinstance(obj, pd.Series):
        return obj.to_dict()
    if obj is pd.NA:
        return None
    raise TypeError(f"cannot serialise {type(obj).__name__} in stats.json")


def _load_frame(project, split: str) -> pd.DataFrame:
    from portrait_builder.stats import project_frame  # the dataset helper's single source of crop rows

    return project_frame(project, split=split)


def _with_provenance(project, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` plus one ``<attribute>_provenance`` column per taxonomy attribute: the provenance of each
    crop's current label (None in the store, a label from before revision 0004, is a click), None where
    the crop has no label of that attribute.

    Read one attribute at a time: a store of 2,500,000 crops has about 9 million current labels, and
    one result of all of them (a row object each, then a dict per attribute) held gigabytes at once.
    """
    from portrait_builder.split.store import read_frame
    from portrait_builder.stats.frame import shared

    crop_ids = frame["crop_id"].to_numpy(dtype=np.int64)
    out = frame.copy(deep=False)  # new columns only: the crop rows are not copied (a gigabyte at 2.5 M crops)
    with project.session() as s:
        for attr in project.taxonomy.attributes:
            rows = read_frame(s, select(CurrentLabel.crop_id, Label.provenance)
                              .join(Label, Label.id == CurrentLabel.label_id)
                              .where(CurrentLabel.attribute == attr.name, CurrentLabel.value.is_not(None)),
                              ["crop_id", "provenance"])
            known = pd.Series(shared(rows["provenance"]), index=rows["crop_id"].to_numpy(dtype=np.int64))
            del rows
            values = np.array(pd.Series(crop_ids).map(known), dtype=object)  # a writable copy
            have = pd.Series(crop_ids).isin(known.index).to_numpy()
            values[have & pd.isna(values)] = "clicked"  # a label from before revision 0004
            values[~have] = None
            if attr.kind != "identity" and attr.name in out.columns:
                # the frame was read in another transaction: a label given since has no value here
                no_value = np.array([records.missing(v) for v in out[attr.name].tolist()], dtype=bool)
                values[no_value] = None
            out[records.provenance_column(attr.name)] = pd.Series(values, index=out.index, dtype=object)
    return out


def _check_prepared(project, frame: pd.DataFrame, split: str) -> None:
    root = project.root
    if frame.empty:
        raise UserError(f"project {root} has no crops; ingest videos first (`portrait ingest`)")
    assigned = frame[frame["subset"].notna()]
    if assigned.empty:
        raise UserError(f"no crop of {root} is in split {split!r}; run `portrait split {root}` first")
    if assigned["phash"].isna().any():
        n = int(assigned["phash"].isna().sum())
        raise UserError(f"{n} crops have no pHash; run `portrait hash {root}` first")
    if assigned["phash_group"].isna().any():
        n = int(assigned["phash_group"].isna().sum())
        raise UserError(f"{n} crops have no near-duplicate group; run `portrait groups {root}` first")


def _store_context(project, split: str) -> tuple[dict[int, records.VideoInfo], dict[int, int], dict]:
    with project.session() as s:
        videos = {
            vid: records.VideoInfo(vid, title, fp)
            for vid, title, fp in s.execute(select(Video.id, Video.title, Video.fingerprint))
        }
        shots = dict(s.execute(select(Track.id, Track.shot_index)).all())
        wanted = (GROUPS_SETTING, _split_setting(split))
        settings = dict(s.execute(select(Setting.key, Setting.value).where(Setting.key.in_(wanted))).all())
    return videos, shots, settings


def _place(src: str | Path, dst: str | Path, mode: str, state: dict) -> None:
    if mode != "copy" and not state.get("no_links"):
        try:
            os.link(src, dst)
            state["linked"] = state.get("linked", 0) + 1
            return
        except OSError as exc:
            if mode == "hardlink":
                raise UserError(f"cannot hard-link {src} into the release: {exc.strerror}") from None
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise
            log.info("hard links refused (%s); copying crops instead", exc.strerror)
            state["no_links"] = True
    shutil.copyfile(src, dst)
    state["copied"] = state.get("copied", 0) + 1


def _counts(table: records.ReleaseTable) -> dict:
    ann = table.annotations
    subsets = {}
    for name in records.SUBSETS:
        part = ann[ann["subset"] == name]
        subsets[name] = {
            "images": int(len(part)),
            "identities": int(part["identity"].nunique(dropna=True)),
            "unidentified": int(part["identity"].isna().sum()),
        }
    return {
        "crops": int(len(ann)),
        "identities": len(table.identities),
        "videos": len(table.videos),
        "excluded_unassigned": table.excluded,
        "subsets": subsets,
    }


def _write_text(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8"))


def write_release(project, version: str, out_dir: str | Path, config: ReleaseConfig | None = None) -> Path:
    """Write release ``version`` of ``project`` to ``out_dir`` (which must not exist) and record it in the store.

    Requires pHashes, groups and the named split (``portrait hash``, ``portrait groups``, ``portrait split``);
    a missing step is named in the error. Returns the release folder.
    """
    config = config or ReleaseConfig()
    if not VERSION_RE.match(version):
        raise UserError(f"version {version!r} is not X.Y.Z (semantic versioning, e.g. 1.0.0)")
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise UserError(f"{out_dir} already exists; releases are immutable: choose a new --out folder")
    if not out_dir.parent.is_dir():
        raise UserError(f"parent folder {out_dir.parent} does not exist")

    from portrait_builder.stats import dataset_stats, write_stats

    taxonomy = project.taxonomy
    frame = _with_provenance(project, _load_frame(project, config.split))
    _check_prepared(project, frame, config.split)
    videos, shots, settings = _store_context(project, config.split)
    table = records.build_table(frame, taxonomy, videos, shots)
    # Everything the whole frame is needed for happens here, before the crops are placed and the
    # tables written, so the frame (gigabytes at millions of crops) is not held beside those.
    fingerprint = records.store_fingerprint(frame, taxonomy)
    stats = dataset_stats(frame[frame["subset"].notna()], taxonomy, k=config.k)
    del frame
    crop_root = os.fspath(project.crop_root)  # strings: a Path per crop cost a minute at 2,500,000 crops
    missing = [p for p in table.sources if not os.path.isfile(os.path.join(crop_root, p))]
    if missing:
        raise UserError(f"{len(missing)} crop files are missing under {project.crop_root} (first: {missing[0]})")

    configuration = {
        "split": config.split,
        "k": config.k,
        "taxonomy": {"name": taxonomy.name, "sha256": file_digest(Path(taxonomy.source))},
        "store_settings": settings,
    }
    body = {
        "schema_version": manifest.MANIFEST_SCHEMA_VERSION,
        "tool": {"name": "portrait-builder", "version": __version__},
        "version": version,
        "store_fingerprint": fingerprint,
        "configuration": configuration,
        "naming": {
            "pattern": "{pid:04d}_c{cam}s{seq}_{frame:06d}_{k:02d}.jpg",
            "pid": "release person id 1..N (contiguous); -1: no identity (train); 0000: distractor (gallery)",
            "cam": "video ordinal (see videos), not a camera",
            "seq": "shot index of the track + 1",
            "frame": "source frame index",
            "k": "1-based counter among crops sharing the rest of the name, in crop-id order",
        },
        "folders": dict(SUBSET_DIRS),
        "videos": table.videos,
        "identities": table.identities,
        "counts": _counts(table),
    }

    tmp = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    for stale in out_dir.parent.glob(f".{out_dir.name}.partial-*"):
        log.warning("removing %s left by an interrupted release", stale)
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir()
    try:
        for folder in SUBSET_DIRS.values():
            (tmp / folder).mkdir()
        state: dict = {}
        files = table.annotations["file"].tolist()
        out_root = os.fspath(tmp)
        for src, dst in tqdm(
            zip(table.sources, files, strict=True), total=len(files), desc="crops", unit="img",
            disable=not config.progress, mininterval=0.5,
        ):
            _place(os.path.join(crop_root, src), os.path.join(out_root, dst), config.link, state)
        del files

        arrow = pa.Table.from_pandas(table.annotations, schema=records.arrow_schema(taxonomy), preserve_index=False)
        pq.write_table(arrow, tmp / "annotations.parquet", compression="zstd")
        shutil.copyfile(taxonomy.source, tmp / "taxonomy.yaml")

        _write_text(tmp / "stats.json", json.dumps(stats, sort_keys=True, indent=1, default=_json_default) + "\n")
        write_stats(stats, tmp / "stats")

        # line by line: at 2,500,000 crops the two files' text is gigabytes
        with open(tmp / "captions.jsonl", "w", encoding="utf-8", newline="\n") as cap, \
                open(tmp / "qa.jsonl", "w", encoding="utf-8", newline="\n") as qa:
            for line, pairs in records.iter_jsonl(table.annotations, taxonomy):
                cap.write(line + "\n")
                qa.writelines(p + "\n" for p in pairs)
        _write_text(tmp / "DATASHEET.md", datasheet.render(body, table.annotations, taxonomy))

        body["files"] = manifest.checksums(
            tmp, manifest.release_files(tmp), progress=config.progress, desc="sha256"
        )
        data = manifest.dumps(body)
        schema = manifest.manifest_schema()
        problems = manifest.schema_problems(manifest.validation_view(json.loads(data), schema), schema, "manifest.json")
        if problems:  # a bug, not a user error: never publish a release that fails its own schema
            raise RuntimeError("; ".join(problems))
        (tmp / manifest.MANIFEST_NAME).write_bytes(data)
        manifest_sha = hashlib.sha256(data).hexdigest()

        existing = _existing_release(project, version)
        if existing is not None and existing.manifest_sha256 != manifest_sha:
            raise UserError(
                f"version {version} was already released from this store with different content "
                f"(at {existing.path}); choose a new version"
            )
        if out_dir.exists():
            raise UserError(f"{out_dir} appeared while the release was written; not overwriting it")
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("release %s: %s crops linked, %s copied", version, state.get("linked", 0), state.get("copied", 0))
    if existing is None:
        record = {**configuration, "out": str(out_dir.resolve()), "link": config.link, "counts": body["counts"]}

        def add(session):
            session.add(ReleaseRow(version=version, path=str(out_dir.resolve()), manifest_sha256=manifest_sha,
                                   config=record))

        project.run_write(add)
    return out_dir


def _existing_release(project, version: str):
    with project.session() as s:
        return s.scalars(select(ReleaseRow).where(ReleaseRow.version == version)).one_or_none()


__all__ = ["LINK_MODES", "ReleaseConfig", "write_release"]
