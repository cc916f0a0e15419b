"""Write an immutable, versioned release folder from a project (Market-1501 layout + Parquet + manifest).

The release is built in a hidden temporary sibling of the output folder and renamed into place at the
end, so a crash never leaves a half-written release under the final name; an existing folder is never
overwritten. Crops are hard-linked from the project (copied when the file system refuses links).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tqdm import tqdm

from portrait_builder import __version__
from portrait_builder.common import file_digest
from portrait_builder.errors import UserError
from portrait_builder.release import datasheet, manifest, records
from portrait_builder.release.naming import SUBSET_DIRS
from portrait_builder.release.plan import ReleasePlan, ReleaseScan
from portrait_builder.store.models import Crop, CurrentLabel, Label, Setting, Track, Video
from portrait_builder.store.models import Release as ReleaseRow
from portrait_builder.taxonomy import Taxonomy

log = logging.getLogger(__name__)

VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")
LINK_MODES = ("auto", "hardlink", "copy")
# Settings that shape a release, recorded in its manifest: the grouping (threshold, within-video) written
# by `portrait groups`, and the split's configuration and summary written by `portrait split`.
GROUPS_SETTING = "phash_groups"
# Crops read, checked and written at a time: a release holds one chunk's rows, never the store's.
RELEASE_CHUNK = 50_000
# Rows per row group of annotations.parquet (the last one holds the rest).
ROW_GROUP = 65_536


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


@contextlib.contextmanager
def _snapshot(project) -> Iterator[Session]:
    """One read transaction for every read of a release: the two passes over the crops must see the
    same store (the pids, video ordinals and k of the first name the rows of the second). SQLite's
    transaction, begun at the first read, is one snapshot; PostgreSQL's default (read committed)
    takes a new one per statement, hence repeatable read."""
    with project.session() as s:
        if not project.is_sqlite:
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        yield s


def _with_provenance(s: Session, taxonomy: Taxonomy, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (a chunk of crops in crop-id order) plus one ``<attribute>_provenance`` column per
    taxonomy attribute: the provenance of each crop's current label (None in the store, a label from
    before revision 0004, is a click), None where the crop has no label of that attribute.

    Read one attribute at a time, for the chunk's crop-id range only: a store of 2,500,000 crops has
    about 9 million current labels, and one result of all of them held gigabytes at once.
    """
    from portrait_builder.split.store import read_frame
    from portrait_builder.stats.frame import shared

    crop_ids = frame["crop_id"].to_numpy(dtype=np.int64)
    lo, hi = int(crop_ids[0]), int(crop_ids[-1]) + 1
    out = frame.copy(deep=False)  # new columns only: the crop rows are not copied
    for attr in taxonomy.attributes:
        rows = read_frame(s, select(CurrentLabel.crop_id, Label.provenance)
                          .join(Label, Label.id == CurrentLabel.label_id)
                          .where(CurrentLabel.attribute == attr.name, CurrentLabel.value.is_not(None),
                                 CurrentLabel.crop_id >= lo, CurrentLabel.crop_id < hi),
                          ["crop_id", "provenance"])
        known = pd.Series(shared(rows["provenance"]), index=rows["crop_id"].to_numpy(dtype=np.int64))
        del rows
        values = np.array(pd.Series(crop_ids).map(known), dtype=object)  # a writable copy
        have = pd.Series(crop_ids).isin(known.index).to_numpy()
        values[have & pd.isna(values)] = "clicked"  # a label from before revision 0004
        values[~have] = None
        out[records.provenance_column(attr.name)] = pd.Series(values, index=out.index, dtype=object)
    return out


def _check_prepared(project, scan: ReleaseScan, split: str) -> None:
    root = project.root
    if not scan.crops:
        raise UserError(f"project {root} has no crops; ingest videos first (`portrait ingest`)")
    if not scan.assigned:
        raise UserError(f"no crop of {root} is in split {split!r}; run `portrait split {root}` first")
    if scan.no_phash:
        raise UserError(f"{scan.no_phash} crops have no pHash; run `portrait hash {root}` first")
    if scan.no_group:
        raise UserError(f"{scan.no_group} crops have no near-duplicate group; run `portrait groups {root}` first")


def _store_context(s: Session, split: str) -> tuple[dict[int, records.VideoInfo], dict[int, int], dict]:
    videos = {
        vid: records.VideoInfo(vid, title, fp)
        for vid, title, fp in s.execute(select(Video.id, Video.title, Video.fingerprint))
    }
    shots = dict(s.execute(select(Track.id, Track.shot_index)).all())
    wanted = (GROUPS_SETTING, _split_setting(split))
    settings = dict(s.execute(select(Setting.key, Setting.value).where(Setting.key.in_(wanted))).all())
    return videos, shots, settings


def _plan(project, s: Session, config: ReleaseConfig, videos: dict[int, records.VideoInfo],
          shots: dict[int, int]) -> ReleasePlan:
    """Pass 1, nothing written yet: every crop's name parts, a chunk at a time without its labels. The
    store must be ready for the release and every released crop's file there; the plan numbers the
    release's pids, videos and files."""
    from portrait_builder.stats.frame import iter_frames  # the dataset helper's single source of crop rows

    scan = ReleaseScan(shots)
    crop_root = os.fspath(project.crop_root)  # strings: a Path per crop cost a minute at 2,500,000 crops
    missing, first_missing = 0, ""
    total = s.scalar(select(func.count()).select_from(Crop)) if config.progress else None
    with tqdm(total=total, desc="reading", unit="crop", disable=not config.progress, mininterval=0.5) as bar:
        for frame in iter_frames(s, project.taxonomy, config.split, RELEASE_CHUNK, attributes=False):
            scan.add(frame)
            paths = frame.loc[frame["subset"].notna(), "path"].astype(str).tolist()
            absent = [p for p in paths if not os.path.isfile(os.path.join(crop_root, p))]
            if absent and not missing:
                first_missing = absent[0]
            missing += len(absent)
            bar.update(len(frame))
    _check_prepared(project, scan, config.split)
    plan = scan.finish(videos)
    if missing:
        raise UserError(f"{missing} crop files are missing under {project.crop_root} (first: {first_missing})")
    return plan


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


class _Counts:
    """The manifest's counts per subset, from annotation rows given a chunk at a time."""

    def __init__(self) -> None:
        self._images = dict.fromkeys(records.SUBSETS, 0)
        self._unidentified = dict.fromkeys(records.SUBSETS, 0)
        self._pids: dict[str, set[int]] = {name: set() for name in records.SUBSETS}

    def add(self, annotations: pd.DataFrame) -> None:
        for name in records.SUBSETS:
            part = annotations[annotations["subset"] == name]
            self._images[name] += len(part)
            self._unidentified[name] += int(part["identity"].isna().sum())
            self._pids[name].update(part["identity"].dropna().tolist())

    def result(self, plan: ReleasePlan) -> dict:
        return {
            "crops": sum(self._images.values()),
            "identities": len(plan.identities),
            "videos": len(plan.videos),
            "excluded_unassigned": plan.excluded,
            "subsets": {
                name: {"images": self._images[name], "identities": len(self._pids[name]),
                       "unidentified": self._unidentified[name]}
                for name in records.SUBSETS
            },
        }


class _RowFiles:
    """annotations.parquet, captions.jsonl and qa.jsonl of a release, appended a chunk of rows at a time.

    The Parquet rows are written in row groups of ROW_GROUP rows whatever chunks they come in, so the
    file, and the manifest's checksum of it, depend on the released rows only, not on how the store
    was read (RELEASE_CHUNK).
    """

    def __init__(self, folder: Path, taxonomy: Taxonomy):
        self._folder = folder
        self._taxonomy = taxonomy
        self._schema = records.arrow_schema(taxonomy)
        self._parquet: pq.ParquetWriter | None = None
        self._pending: list[pa.Table] = []  # rows not yet in a row group
        self._pending_rows = 0
        self._files = contextlib.ExitStack()

    def __enter__(self) -> _RowFiles:
        with self._files:  # closes what was opened when the second open fails
            self._captions = self._files.enter_context(self._text("captions.jsonl"))
            self._qa = self._files.enter_context(self._text("qa.jsonl"))
            self._files = self._files.pop_all()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        with self._files:
            if exc_type is None and self._pending_rows:
                self._write_group(self._pending_rows)

    def _text(self, name: str) -> TextIO:
        return open(self._folder / name, "w", encoding="utf-8", newline="\n")

    def write(self, annotations: pd.DataFrame) -> None:
        arrow = pa.Table.from_pandas(annotations, schema=self._schema, preserve_index=False)
        if self._parquet is None:
            # the table's schema: with the pandas metadata that one write of the whole table had
            self._parquet = self._files.enter_context(
                pq.ParquetWriter(self._folder / "annotations.parquet", arrow.schema, compression="zstd"))
        self._pending.append(arrow)
        self._pending_rows += arrow.num_rows
        while self._pending_rows >= ROW_GROUP:
            self._write_group(ROW_GROUP)
        for line, pairs in records.iter_jsonl(annotations, self._taxonomy):
            self._captions.write(line + "\n")
            self._qa.writelines(p + "\n" for p in pairs)

    def _write_group(self, rows: int) -> None:
        pending = pa.concat_tables(self._pending)
        # contiguous columns: the encoded pages must not depend on the chunks the rows came in
        self._parquet.write_table(pending.slice(0, rows).combine_chunks(), row_group_size=rows)
        rest = pending.slice(rows)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows


@dataclass
class _Written:
    """What pass 2 gathered for the files written after the rows."""

    fingerprint: str
    stats: dict
    counts: dict
    coverage: datasheet.Coverage
    placed: dict  # crops "linked" and "copied"


def _write_rows(project, s: Session, tmp: Path, config: ReleaseConfig, plan: ReleasePlan,
                videos: dict[int, records.VideoInfo], shots: dict[int, int]) -> _Written:
    """Pass 2, a chunk of crops at a time with their labels: the released crops placed, their rows
    appended to the row files; the store fingerprint, statistics, counts and label coverage summed up."""
    from portrait_builder.stats.frame import iter_frames
    from portrait_builder.stats.tables import StatsAccumulator

    taxonomy = project.taxonomy
    fingerprint = records.StoreFingerprint(taxonomy)
    stats = StatsAccumulator(taxonomy, k=config.k)
    counts = _Counts()
    coverage = datasheet.Coverage(taxonomy)
    crop_root, out_root = os.fspath(project.crop_root), os.fspath(tmp)
    state: dict = {}
    with _RowFiles(tmp, taxonomy) as rows, tqdm(total=len(plan.crop_ids), desc="crops", unit="img",
                                                 disable=not config.progress, mininterval=0.5) as bar:
        for frame in iter_frames(s, taxonomy, config.split, RELEASE_CHUNK):
            frame = _with_provenance(s, taxonomy, frame)
            fingerprint.update(frame)
            assigned = frame[frame["subset"].notna()]
            del frame
            stats.add(assigned)
            if assigned.empty:
                continue
            annotations, sources = records.annotation_rows(assigned, taxonomy, videos, shots, plan)
            for src, dst in zip(sources, annotations["file"].tolist(), strict=True):
                _place(os.path.join(crop_root, src), os.path.join(out_root, dst), config.link, state)
            bar.update(len(sources))
            rows.write(annotations)
            counts.add(annotations)
            coverage.add(annotations)
    return _Written(fingerprint.hexdigest(), stats.result(), counts.result(plan), coverage, state)


def _write_text(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8"))


def _check_target(version: str, out_dir: Path) -> None:
    if not VERSION_RE.match(version):
        raise UserError(f"version {version!r} is not X.Y.Z (semantic versioning, e.g. 1.0.0)")
    if out_dir.exists():
        raise UserError(f"{out_dir} already exists; releases are immutable: choose a new --out folder")
    if not out_dir.parent.is_dir():
        raise UserError(f"parent folder {out_dir.parent} does not exist")


def _temporary_folder(out_dir: Path) -> Path:
    """A fresh hidden sibling of ``out_dir`` holding its three image folders (stale ones removed)."""
    tmp = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    for stale in out_dir.parent.glob(f".{out_dir.name}.partial-*"):
        log.warning("removing %s left by an interrupted release", stale)
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir()
    for folder in SUBSET_DIRS.values():
        (tmp / folder).mkdir()
    return tmp


@contextlib.contextmanager
def _removed_on_error(tmp: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _manifest_body(version: str, configuration: dict, plan: ReleasePlan, written: _Written) -> dict:
    return {
        "schema_version": manifest.MANIFEST_SCHEMA_VERSION,
        "tool": {"name": "portrait-builder", "version": __version__},
        "version": version,
        "store_fingerprint": written.fingerprint,
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
        "videos": plan.videos,
        "identities": plan.identities,
        "counts": written.counts,
    }


def _seal(tmp: Path, body: dict, written: _Written, taxonomy: Taxonomy, progress: bool) -> str:
    """The files written after the rows, the manifest last (it lists every other file's checksum).
    Returns the manifest's sha256."""
    from portrait_builder.stats import write_stats

    shutil.copyfile(taxonomy.source, tmp / "taxonomy.yaml")
    _write_text(tmp / "stats.json", json.dumps(written.stats, sort_keys=True, indent=1, default=_json_default) + "\n")
    write_stats(written.stats, tmp / "stats")
    _write_text(tmp / "DATASHEET.md", datasheet.render(body, written.coverage, taxonomy))
    # streamed: at 2,500,000 crops a dict of every file's checksum and the manifest's text held over a gigabyte
    files = tqdm(manifest.iter_checksums(tmp, manifest.iter_release_files(tmp)), desc="sha256", unit="file",
                 total=manifest.count_release_files(tmp), disable=not progress, mininterval=0.5)
    sha, problems = manifest.write_manifest(tmp / manifest.MANIFEST_NAME, body, files, manifest.manifest_schema())
    if problems:  # a bug, not a user error: never publish a release that fails its own schema
        raise RuntimeError("; ".join(problems))
    return sha


def write_release(project, version: str, out_dir: str | Path, config: ReleaseConfig | None = None) -> Path:
    """Write release ``version`` of ``project`` to ``out_dir`` (which must not exist) and record it in the store.

    Requires pHashes, groups and the named split (``portrait hash``, ``portrait groups``, ``portrait split``);
    a missing step is named in the error. Returns the release folder.

    The store is read twice, a chunk of RELEASE_CHUNK crops at a time: first the name parts of every
    crop (the checks, the numbering of pids, videos and files), then the crops with their labels,
    whose rows are written at once; the manifest is written as its checksums are computed. Memory
    holds one chunk, a few integers per released crop and, while the manifest is written, the sorted
    names of one folder (about 30 bytes a file).
    """
    config = config or ReleaseConfig()
    out_dir = Path(out_dir)
    _check_target(version, out_dir)
    taxonomy = project.taxonomy
    with _snapshot(project) as s:
        videos, shots, settings = _store_context(s, config.split)
        plan = _plan(project, s, config, videos, shots)
        tmp = _temporary_folder(out_dir)
        with _removed_on_error(tmp):
            written = _write_rows(project, s, tmp, config, plan, videos, shots)
    configuration = {
        "split": config.split,
        "k": config.k,
        "taxonomy": {"name": taxonomy.name, "sha256": file_digest(Path(taxonomy.source))},
        "store_settings": settings,
    }
    with _removed_on_error(tmp):
        body = _manifest_body(version, configuration, plan, written)
        manifest_sha = _seal(tmp, body, written, taxonomy, config.progress)
        existing = _existing_release(project, version)
        if existing is not None and existing.manifest_sha256 != manifest_sha:
            raise UserError(
                f"version {version} was already released from this store with different content "
                f"(at {existing.path}); choose a new version"
            )
        if out_dir.exists():
            raise UserError(f"{out_dir} appeared while the release was written; not overwriting it")
        os.rename(tmp, out_dir)
    log.info("release %s: %s crops linked, %s copied", version, written.placed.get("linked", 0),
             written.placed.get("copied", 0))
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


def release_counts(project, version: str) -> dict:
    """The manifest's ``counts`` of release ``version`` of ``project``, as the store recorded them when
    it was written: reading them from the manifest loads its checksum of every file (a gigabyte at
    2,500,000 crops)."""
    row = _existing_release(project, version)
    if row is None:
        raise UserError(f"version {version} was never released from this store")
    return row.config["counts"]


__all__ = ["LINK_MODES", "ReleaseConfig", "release_counts", "write_release"]
