"""One fast generator of big project stores for the benchmarks (and a small one for tests).

``build(root, spec)`` creates a project (SQLite, or PostgreSQL with ``db_url``) holding
``spec.crops`` crops in ``spec.videos`` movies, cut into tracks of ``spec.track_len`` crops, with
``spec.identities_per_video`` characters per movie (alternating genders, each with an exemplar crop)
and exactly ``spec.labels`` label rows spread over the taxonomy's attributes.

How it is fast:

* rows are built as NumPy columns (no dict per row) and go in within one transaction: on PostgreSQL
  with ``COPY ... FROM STDIN`` (psycopg's copy), the big tables' foreign keys, unique constraints and
  secondary indexes dropped first and rebuilt once after the load; on SQLite with SQLAlchemy Core
  ``insert(table)`` executemany batches of ``BATCH`` rows;
* a few hundred distinct real 256x128 JPEGs (MOT17 person crops when ``../shared/data`` has them,
  else rendered figures) are written once; every crop gets its own path (``crops.path`` is unique)
  as a hard link to one of them, so 250,000 crops cost 250,000 directory entries, not 250,000 files;
* labels bypass :func:`portrait_builder.store.labels.add_label`'s per-row checks (crop exists, value
  in the taxonomy, identity of the crop's movie). That is safe here ONLY because every value is
  drawn from the taxonomy: each candidate value is passed once through ``Taxonomy.encode`` (so it
  is exactly what add_label would store), identity values are ids of the crop's own movie, and
  gender always equals the crop's identity's gender.

``labels`` and ``current_labels`` stay consistent the way add_label keeps them: the history holds
``spec.labels`` rows; superseded rows (older values of a (crop, attribute)) get the smallest ids and
oldest times, and ``current_labels`` points at the newest row of every (crop, attribute), i.e. the
one with the largest id. tests/scale/test_scale_bigstore.py checks these invariants.

Benchmarks are scripts: import this module with ``sys.path`` holding ``benchmarks/`` (a script's own
folder is there already), e.g. ``from bigstore import BigStoreSpec, build``.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image
from sqlalchemy import insert, select
from tqdm import tqdm

from portrait_builder.dedup.phash import to_signed
from portrait_builder.store import Project
from portrait_builder.store.models import (
    Annotator,
    Crop,
    CurrentLabel,
    Identity,
    Label,
    Setting,
    Track,
    Video,
)
from portrait_builder.testing.annotation_sample import color_embedding, mot_tracks, rendered_tracks

MOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "mot" / "MOT17-mini" / "train"
BATCH = 50_000
# the tables COPY fills with millions of rows (their secondary indexes are built after the load)
BULK_TABLES = ("tracks", "crops", "labels", "current_labels")
GROUPS_SETTING = "phash_groups"

# Share of crops holding a current label per attribute (identity and gender follow `identified`).
DEFAULT_COVERAGE = {"age": 0.6, "physique": 0.5, "height": 0.5, "body_posture": 0.5, "arm_posture": 0.4,
                    "expression": 0.4}


@dataclass(frozen=True)
class BigStoreSpec:
    """What to generate. ``labels=None``: one label per labelled (crop, attribute), no history.

    ``identified`` is the share of tracks whose every crop carries an identity (one of its movie's
    characters) and that identity's gender; exemplar crops are always labelled. The paper has over
    60 % of crops without identity, hence 0.4. ``coverage`` gives, per other attribute, the share of
    crops with a current label. ``labels`` above the number of current labels adds superseded
    history rows (relabels) so the history holds exactly that many rows.
    """

    crops: int = 250_000
    videos: int = 50
    track_len: int = 25
    identities_per_video: int = 20
    identified: float = 0.4
    coverage: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_COVERAGE))
    labels: int | None = 1_000_000
    distinct_images: int = 300
    images: str = "auto"  # auto: MOT17 crops when present, else rendered; "mot" | "rendered"
    embeddings: bool = True
    files: bool = True  # hard-link a JPEG under every crop's path
    seed: int = 0

    def __post_init__(self):
        if self.images not in ("auto", "mot", "rendered"):
            raise ValueError(f"unknown image source {self.images!r}; valid: auto, mot, rendered")
        if self.crops < self.videos * max(1, self.identities_per_video):
            raise ValueError("need at least one crop per character")


@dataclass(frozen=True)
class BuildInfo:
    crops: int
    tracks: int
    identities: int
    labels: int
    current_labels: int
    seconds: float
    phases: dict


def distinct_images(folder: Path, n: int, source: str = "auto") -> list[Path]:
    """Write ``n`` distinct real 256x128 JPEGs into ``folder`` once; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    if source in ("auto", "mot") and MOT.is_dir():
        for seq in sorted(MOT.glob("MOT17-*")):
            for tr in mot_tracks(seq, max_tracks=100, min_height=80):
                images += list(tr.images)
            if len(images) >= n:
                break
    if source == "mot" and not images:
        raise FileNotFoundError(f"no MOT17 sequences under {MOT}")
    if len(images) < 20:
        for tr in rendered_tracks(max(1, n // 5), 5, seed=1):
            images += list(tr.images)
    out = []
    for i in range(n):
        img = images[i % len(images)]
        if (i // len(images)) % 2:  # more variety than the sources have: mirror
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        path = folder / f"src{i:04d}.jpg"
        img.save(path, "JPEG", quality=88)
        out.append(path)
    return out


def _value_table(taxonomy, attribute: str) -> tuple[list[str], np.ndarray]:
    """Encoded candidate values of an attribute (through Taxonomy.encode) and long-tailed weights."""
    attr = taxonomy.attribute(attribute)
    names = [v for v in attr.value_names if v != attr.unsure_value]
    cands = [[v] for v in names]
    if attr.multilabel:  # a few common pairs as well, e.g. "happiness|surprise"
        cands += [[names[i], names[j]] for i in range(len(names)) for j in range(i + 1, len(names)) if j - i <= 2]
    cands.append([attr.unsure_value])
    texts = [taxonomy.encode(attribute, c if attr.multilabel else c[0]) for c in cands]
    w = 1.0 / np.arange(1, len(texts) + 1) ** 0.8  # Zipf-like: real label counts are long-tailed
    return texts, w / w.sum()


def _rows(cols: Mapping[str, object], start: int, stop: int):
    """Rows ``start:stop`` of ``cols`` as tuples (a scalar column repeats its value), plain Python values."""
    parts = []
    for v in cols.values():
        if isinstance(v, np.ndarray):
            parts.append(v[start:stop].tolist())
        elif isinstance(v, list):
            parts.append(v[start:stop])
        else:
            parts.append(itertools.repeat(v, stop - start))
    return zip(*parts, strict=True)


def _length(cols: Mapping[str, object]) -> int:
    return next(len(v) for v in cols.values() if isinstance(v, (np.ndarray, list)))  # type: ignore[arg-type]


def _load(conn, table, cols: Mapping[str, object], desc: str, progress: bool) -> None:
    """Insert the rows of ``cols`` (column name -> array, list or one value for every row) into ``table``.

    PostgreSQL: one ``COPY ... FROM STDIN`` through the connection's psycopg cursor, in the caller's
    transaction (executemany INSERTs took 2,130 s for 1,000,000 crops and 4,000,000 labels). SQLite:
    Core executemany batches of ``BATCH`` rows.
    """
    n, names = _length(cols), list(cols)
    name = table.__table__.name
    bar = tqdm(total=n, desc=desc, unit="row", unit_scale=True, leave=False, disable=not progress, mininterval=1.0)
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {name} ({', '.join(names)}) FROM STDIN") as copy:
            for start in range(0, n, BATCH):
                stop = min(n, start + BATCH)
                for row in _rows(cols, start, stop):
                    copy.write_row(row)
                bar.update(stop - start)
    else:
        for start in range(0, n, BATCH):
            stop = min(n, start + BATCH)
            conn.execute(insert(table), [dict(zip(names, row, strict=True)) for row in _rows(cols, start, stop)])
            bar.update(stop - start)
    bar.close()


def _drop_secondary(conn, tables: tuple[str, ...]) -> list[str]:
    """Drop the foreign keys, unique constraints and plain indexes of ``tables`` (PostgreSQL); return the
    statements that recreate them, to run after the load.

    Loading into indexed, constrained tables checks every foreign key row by row and grows every index
    one entry at a time; building each index once and validating each foreign key with one join is the
    usual bulk-load order. Primary keys stay (other tables' foreign keys point at them). The statements
    come from the catalog (``pg_get_constraintdef``, ``pg_get_indexdef``), so the store ends with
    exactly the schema the migrations made.
    """
    regs = "ARRAY[" + ", ".join(f"'{t}'::regclass" for t in tables) + "]"
    cons = conn.exec_driver_sql(
        "SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        f"WHERE contype IN ('f', 'u') AND conrelid = ANY({regs}) ORDER BY contype DESC, conname").all()
    idx = conn.exec_driver_sql(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i "
        f"WHERE indrelid = ANY({regs}) AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
        "ORDER BY 1").all()
    for table, con, _, _ in sorted(cons, key=lambda c: c[2]):  # foreign keys before the unique keys they may use
        conn.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{con}"')
    for index, _ in idx:
        conn.exec_driver_sql(f"DROP INDEX {index}")
    # recreate: unique constraints and indexes first, then the foreign keys
    return ([sql for _, sql in idx] + [f'ALTER TABLE {t} ADD CONSTRAINT "{c}" {d}' for t, c, k, d in cons if k == "u"]
            + [f'ALTER TABLE {t} ADD CONSTRAINT "{c}" {d}' for t, c, k, d in cons if k == "f"])


def build(root: str | Path, spec: BigStoreSpec = BigStoreSpec(), *, db_url: str | None = None,
          progress: bool = True) -> tuple[Project, BuildInfo]:
    """Create a project at ``root`` filled as ``spec`` says. Returns the open project and counts."""
    t_start = time.perf_counter()
    phases: dict[str, float] = {}
    root = Path(root)
    project = Project.init(root, db_url=db_url)
    tax = project.taxonomy
    rng = np.random.default_rng(spec.seed)
    now = time.time() - 86_400.0

    t0 = time.perf_counter()
    sources = distinct_images(root / "sources", spec.distinct_images, spec.images)
    hashes = np.array([int(str(imagehash.phash(Image.open(p))), 16) for p in sources], dtype=np.uint64)
    signed = to_signed(hashes)
    # threshold-0 groups: crops whose images have the same pHash share a group
    _, group_of_image = np.unique(hashes, return_inverse=True)
    embeddings = [color_embedding(Image.open(p)) for p in sources] if spec.embeddings else [None] * len(sources)
    phases["images"] = time.perf_counter() - t0

    # -- videos, tracks, crops (numpy columns first) ---------------------------------------------
    t0 = time.perf_counter()
    n, V = spec.crops, spec.videos
    per_video = np.diff(np.linspace(0, n, V + 1).astype(np.int64))
    crop_video = np.repeat(np.arange(1, V + 1), per_video)
    pos_in_video = np.arange(n) - np.repeat(np.concatenate([[0], np.cumsum(per_video)[:-1]]), per_video)
    track_in_video = pos_in_video // spec.track_len
    new_track = np.ones(n, dtype=bool)
    new_track[1:] = (crop_video[1:] != crop_video[:-1]) | (track_in_video[1:] != track_in_video[:-1])
    crop_track = np.cumsum(new_track)  # track ids 1..T
    T = int(crop_track[-1])
    track_first = np.flatnonzero(new_track)  # index of each track's first crop
    track_video = crop_video[track_first]
    k_in_track = np.arange(n) - np.repeat(track_first, np.diff(np.append(track_first, n)))
    track_src = rng.integers(0, len(sources), T)
    crop_image = (track_src[crop_track - 1] + k_in_track // 5) % len(sources)
    frame_index = pos_in_video * 5
    paths = [f"movie{v:03d}/{c:07d}.jpg" for v, c in zip(crop_video.tolist(), range(1, n + 1), strict=True)]

    videos = [{"id": v, "path": f"/movies/movie{v:03d}.mp4", "fingerprint": f"{v:064x}", "title": f"Movie {v}",
               "fps": 25.0, "frame_count": int(per_video[v - 1]) * 5, "width": 1920, "height": 1080,
               "status": "done", "last_committed_frame": int(per_video[v - 1]) * 5 - 5, "detector": "bench",
               "created_at": now} for v in range(1, V + 1)]
    first_frame = frame_index[track_first]
    tracks = {"id": np.arange(1, T + 1), "video_id": track_video, "tracker_id": np.arange(1, T + 1),
              "first_frame": first_frame, "last_frame": first_frame + 5 * (spec.track_len - 1),
              "shot_index": (np.arange(T) // 7) % 40}
    # columns, not one dict per row: 2,500,000 dicts of 16 keys cost gigabytes before the first insert
    crop_cols = {"id": np.arange(1, n + 1), "video_id": crop_video, "track_id": crop_track,
                 "frame_index": frame_index, "timestamp": frame_index / 25.0, "x1": 10.0, "y1": 20.0, "x2": 74.0,
                 "y2": 148.0, "score": 0.9, "blur": 120.0, "path": paths, "phash": signed.astype(np.int64)[crop_image],
                 "phash_group": group_of_image[crop_image], "embedding": [embeddings[i] for i in crop_image.tolist()]}

    # -- characters: exemplar tracks spread over each movie, more identified tracks at random ----
    genders = [g for g in tax.attribute("gender").value_names if g != tax.attribute("gender").unsure_value]
    idents, ident_video, ident_gender = [], {}, {}
    track_ident = np.zeros(T, dtype=np.int64)
    exemplars = []
    for v in range(1, V + 1):
        vt = np.flatnonzero(track_video == v)
        step = max(1, len(vt) // spec.identities_per_video)
        ids_v = []
        for k in range(spec.identities_per_video):
            iid = len(idents) + 1
            t = int(vt[min(k * step, len(vt) - 1)])
            ex = int(track_first[t]) + 1
            idents.append({"id": iid, "video_id": v, "name": f"character {k + 1}", "gender": genders[k % 2],
                           "exemplar_crop_id": ex, "created_at": now})
            ident_video[iid], ident_gender[iid] = v, genders[k % 2]
            exemplars.append((ex, iid))
            ids_v.append(iid)
        if spec.identified > 0:
            chosen = vt[rng.random(len(vt)) < spec.identified]
            track_ident[chosen] = rng.choice(ids_v, len(chosen))
            for k, iid in enumerate(ids_v):  # each character's exemplar track is one of its tracks
                track_ident[vt[min(k * step, len(vt) - 1)]] = iid
    crop_ident = track_ident[crop_track - 1]
    for ex, iid in exemplars:
        crop_ident[ex - 1] = iid
    phases["rows"] = time.perf_counter() - t0

    # -- current labels: (crop, attribute, value) -----------------------------------------------
    t0 = time.perf_counter()
    attr_order = {a: i for i, a in enumerate(tax.names)}
    cur_crop, cur_attr, cur_val = [], [], []
    has_id = np.flatnonzero(crop_ident > 0)
    for attribute in ("identity", "gender"):
        cur_crop.append(has_id + 1)
        cur_attr.append(np.full(len(has_id), attr_order[attribute]))
        if attribute == "identity":
            cur_val.append(np.array([str(i) for i in crop_ident[has_id].tolist()], dtype=object))
        else:
            cur_val.append(np.array([ident_gender[i] for i in crop_ident[has_id].tolist()], dtype=object))
    tables = {}
    for attribute, share in spec.coverage.items():
        kind = tax.attribute(attribute).kind
        if kind == "identity" or attribute == "gender":
            raise ValueError(f"{attribute} follows `identified`, not `coverage`")
        texts, weights = _value_table(tax, attribute)
        tables[attribute] = (texts, weights)
        chosen = np.flatnonzero(rng.random(n) < share)
        cur_crop.append(chosen + 1)
        cur_attr.append(np.full(len(chosen), attr_order[attribute]))
        cur_val.append(np.asarray(texts, dtype=object)[rng.choice(len(texts), len(chosen), p=weights)])
    crop_col = np.concatenate(cur_crop)
    attr_col = np.concatenate(cur_attr)
    val_col = np.concatenate(cur_val)
    order = np.lexsort((attr_col, crop_col))  # (crop, attribute) order: sequential index inserts
    crop_col, attr_col, val_col = crop_col[order], attr_col[order], val_col[order]
    n_cur = len(crop_col)
    n_labels = n_cur if spec.labels is None else int(spec.labels)
    if n_labels < n_cur:
        raise ValueError(f"labels={n_labels} is fewer than the {n_cur} current labels the spec implies")

    # -- history: superseded rows get the smallest ids and oldest times ---------------------------
    n_old = n_labels - n_cur
    old = np.sort(rng.integers(0, n_cur, n_old)) if n_old else np.zeros(0, dtype=np.int64)
    old_val = np.empty(n_old, dtype=object)
    names = tax.names
    for a in np.unique(attr_col[old]).tolist():
        sel = attr_col[old] == a
        attribute = names[a]
        if attribute == "identity":
            pool = [tax.encode(attribute, v) for v in tax.attribute(attribute).value_names]  # unknown / unsure
        elif attribute == "gender":
            pool = [tax.encode(attribute, tax.attribute(attribute).unsure_value)]  # later settled by identity
        else:
            pool = tables[attribute][0]
        old_val[sel] = np.asarray(pool, dtype=object)[rng.integers(0, len(pool), int(sel.sum()))]

    annotators = [{"id": i + 1, "name": f"gen_{a}", "role": "annotator", "attribute": a, "created_at": now}
                  for i, a in enumerate(names)]
    ann_of = np.arange(1, len(names) + 1)
    attr_names = np.asarray(names, dtype=object)
    # history = the superseded rows (ids 1..n_old, oldest times), then one row per current label
    label_attr = np.concatenate([attr_col[old], attr_col])
    labels = {"id": np.arange(1, n_labels + 1), "crop_id": np.concatenate([crop_col[old], crop_col]),
              "attribute": attr_names[label_attr], "value": np.concatenate([old_val, val_col]),
              "annotator_id": ann_of[label_attr], "source": "import",
              "created_at": np.concatenate([now + np.arange(n_old) * 1e-3,
                                            now + n_old * 1e-3 + 1.0 + np.arange(n_cur) * 1e-3])}
    current = {"crop_id": crop_col, "attribute": attr_names[attr_col], "value": val_col,
               "label_id": np.arange(n_old + 1, n_labels + 1), "annotator_id": ann_of[attr_col]}
    phases["labels"] = time.perf_counter() - t0

    # -- one transaction: COPY on PostgreSQL, executemany batches on SQLite -------------------
    t0 = time.perf_counter()
    pg = project.engine.dialect.name == "postgresql"
    with project.engine.begin() as conn:
        if project.is_sqlite:
            conn.exec_driver_sql("PRAGMA cache_size=-262144")  # 256 MiB page cache for the index builds
        conn.execute(insert(Annotator), annotators)
        conn.execute(insert(Video), videos)
        deferred = _drop_secondary(conn, BULK_TABLES) if pg else []
        _load(conn, Track, tracks, "tracks", progress)
        _load(conn, Crop, crop_cols, "crops", progress)
        for row in idents:
            row["created_by"] = int(ann_of[attr_order["identity"]])
        conn.execute(insert(Identity), idents)
        _load(conn, Label, labels, "labels", progress)
        _load(conn, CurrentLabel, current, "current labels", progress)
        conn.execute(insert(Setting), [{"key": GROUPS_SETTING, "value": {"threshold": 0, "within_video": False}}])
        if pg:
            conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '1GB'")  # index builds sort in memory
            for sql in tqdm(deferred, desc="indexes and foreign keys", leave=False, disable=not progress):
                conn.exec_driver_sql(sql)
            # explicit ids do not advance PostgreSQL's sequences: move them past the rows, or the next
            # ordinary insert (add_annotator, add_label) would collide with a generated id
            for t in ("annotators", "videos", "tracks", "crops", "identities", "labels"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))")
    with project.engine.begin() as conn:  # fresh planner statistics, as a store in use would have
        conn.exec_driver_sql("ANALYZE")
    phases["insert"] = time.perf_counter() - t0

    # -- files: one hard link per crop ------------------------------------------------------------
    t0 = time.perf_counter()
    if spec.files:
        for v in range(1, V + 1):
            (project.crop_root / f"movie{v:03d}").mkdir(parents=True, exist_ok=True)
        crop_root = str(project.crop_root)
        src = [str(p) for p in sources]
        for p, img in tqdm(zip(paths, crop_image.tolist(), strict=True), total=n, desc="hard-linking crops",
                           unit="crop", leave=False, disable=not progress, mininterval=1.0):
            os.link(src[img], os.path.join(crop_root, p))
    phases["files"] = time.perf_counter() - t0
    info = BuildInfo(crops=n, tracks=T, identities=len(idents), labels=n_labels, current_labels=n_cur,
                     seconds=time.perf_counter() - t_start, phases=phases)
    return project, info


def naive_next_item(service):
    """The baseline both annotation benchmarks time against: a first version of "next crop" that reads
    every crop id and every current label of the queue per click."""
    from portrait_builder.store import Crop, CurrentLabel

    with service.project.session() as s:
        all_ids = list(s.scalars(select(Crop.id).order_by(Crop.id)))
        done = set(s.scalars(select(CurrentLabel.crop_id).where(CurrentLabel.attribute == service.attribute,
                                                                 CurrentLabel.value.is_not(None))))
    for c in all_ids:
        if c not in done:
            return service.get_item(c)
    return None
