"""Pure functions from the store's crop frame to the rows of a release: names, annotations, captions, Q&A.

Nothing here touches the database or the file system, so every rule of the release layout is tested
on plain DataFrames (see ``tests/release/test_release_records.py``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from portrait_builder.release import naming
from portrait_builder.release.plan import SUBSETS as SUBSETS  # re-exported: the subsets of every release module
from portrait_builder.release.plan import ReleasePlan, ReleaseScan, VideoInfo
from portrait_builder.store.labels import PROVENANCES
from portrait_builder.taxonomy import Taxonomy

CORE_COLUMNS = (
    "crop_id", "file", "subset", "identity", "video", "video_id", "track", "frame",
    "x1", "y1", "x2", "y2", "phash", "group",
)  # fmt: skip
# Columns of the store frame that the store fingerprint covers, before the attribute columns.
FRAME_COLUMNS = (
    "crop_id", "path", "video_id", "track_id", "frame_index", "x1", "y1", "x2", "y2",
    "phash", "phash_group", "identity", "subset",
)  # fmt: skip


@dataclass(frozen=True)
class ReleaseTable:
    """Everything the writer needs, computed from the frame: the annotation rows and where each file comes from."""

    annotations: pd.DataFrame  # the exact annotations.parquet contract, sorted by crop_id
    sources: list[str]  # crop path (relative to the crop root) of each annotation row, same order
    videos: list[dict]  # [{"cam", "video_id", "title", "fingerprint"}], cam = video ordinal
    identities: list[dict]  # [{"pid", "store_identity", "video_id"}]
    excluded: int  # crops of the project that the split does not assign (not released)


PROVENANCE_SUFFIX = "_provenance"
# Rows converted at a time where a whole-table conversion would hold a text or a dict per row.
FINGERPRINT_CHUNK = 100_000
# Caption templates kept per distinct label set while writing captions.jsonl (a few tens of MB at most).
CAPTION_MEMO = 100_000


def attribute_columns(taxonomy: Taxonomy) -> list[str]:
    return [a.name for a in taxonomy.attributes if a.kind != "identity"]


def provenance_column(attribute: str) -> str:
    return attribute + PROVENANCE_SUFFIX


def provenance_columns(taxonomy: Taxonomy) -> list[str]:
    """``<attribute>_provenance`` for every taxonomy attribute, identity included, in taxonomy order: how
    the crop's current label came about (one of ``store.labels.PROVENANCES``), null without a label."""
    return [provenance_column(a.name) for a in taxonomy.attributes]


def arrow_schema(taxonomy: Taxonomy, *, provenance: bool = True) -> pa.Schema:
    """The Arrow schema of annotations.parquet (see schemas/annotations.schema.json).

    ``provenance=False``: the contract of releases written before labels carried their provenance (no
    ``*_provenance`` columns), which still load and verify.
    """
    fields = [
        pa.field("crop_id", pa.int64(), nullable=False),
        pa.field("file", pa.string(), nullable=False),
        pa.field("subset", pa.string(), nullable=False),
        pa.field("identity", pa.int64()),
        pa.field("video", pa.string(), nullable=False),
        pa.field("video_id", pa.int64(), nullable=False),
        pa.field("track", pa.int64(), nullable=False),
        pa.field("frame", pa.int64(), nullable=False),
        *(pa.field(c, pa.float32(), nullable=False) for c in ("x1", "y1", "x2", "y2")),
        pa.field("phash", pa.string()),
        pa.field("group", pa.int64()),
    ]
    for attr in taxonomy.attributes:
        if attr.kind == "identity":
            continue
        fields.append(pa.field(attr.name, pa.list_(pa.string()) if attr.multilabel else pa.string()))
    if provenance:
        fields += [pa.field(c, pa.string()) for c in provenance_columns(taxonomy)]
    return pa.schema(fields)


def phash_hex(value) -> str | None:
    """Signed 64-bit store pHash -> 16 lower-case hex digits of the unsigned hash (imagehash's str())."""
    if missing(value):
        return None
    return f"{int(value) & 0xFFFFFFFFFFFFFFFF:016x}"


def missing(value) -> bool:
    """None, pandas NA or NaN: an empty cell of a frame or an annotation table."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _single(value) -> str | None:
    return None if missing(value) else str(value)


def _multi(value) -> list[str] | None:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str):
        return [p for p in value.split("|") if p]
    return [str(v) for v in value]


def build_table(
    frame: pd.DataFrame, taxonomy: Taxonomy, videos: Mapping[int, VideoInfo], shots: Mapping[int, int]
) -> ReleaseTable:
    """Turn ``stats.project_frame`` rows into release rows: relabel pids, number videos, name files.

    ``videos`` maps store video id to its info; ``shots`` maps store track id to its shot index.
    ``<attribute>_provenance`` columns of the frame (the writer adds them from the store) are copied;
    where the frame has none, the release's provenance column is null.
    Crops with no subset are left out (counted in ``excluded``). A query without identity is refused:
    it cannot be evaluated and it breaks the split's contract.
    """
    if not frame["crop_id"].is_monotonic_increasing:  # project_frame's rows already are in crop-id order
        frame = frame.sort_values("crop_id", kind="stable")
    scan = ReleaseScan(shots)
    scan.add(frame)
    plan = scan.finish(videos)
    annotations, sources = annotation_rows(frame[frame["subset"].notna()], taxonomy, videos, shots, plan)
    return ReleaseTable(annotations=annotations, sources=sources, videos=plan.videos, identities=plan.identities,
                        excluded=plan.excluded)


def annotation_rows(
    assigned: pd.DataFrame, taxonomy: Taxonomy, videos: Mapping[int, VideoInfo], shots: Mapping[int, int],
    plan: ReleasePlan,
) -> tuple[pd.DataFrame, list[str]]:
    """The annotations.parquet rows of frame rows that have a subset (in crop-id order), with pids,
    video ordinals and ``k`` from ``plan`` (made from every crop of the release), and the crop path
    of each row (relative to the crop root)."""
    identity = assigned["identity"].astype("Int64")
    subsets = assigned["subset"].tolist()
    pids = [None if missing(i) else plan.pid_of[int(i)] for i in identity.tolist()]
    cams = [plan.cam_of[int(v)] for v in assigned["video_id"].tolist()]
    seqs = [int(shots.get(int(t), 0)) + 1 for t in assigned["track_id"].tolist()]
    frames = [int(f) for f in assigned["frame_index"].tolist()]
    k = plan.k_of(assigned["crop_id"].to_numpy(dtype=np.int64)).tolist()
    files = [
        naming.file_name(naming.SUBSET_DIRS[s] + "/" + naming.stem(s, p, c, q, f), n)
        for s, p, c, q, f, n in zip(subsets, pids, cams, seqs, frames, k, strict=True)
    ]
    out = pd.DataFrame(
        {
            "crop_id": assigned["crop_id"].astype("int64").to_numpy(),
            "file": files,
            "subset": subsets,
            "identity": pd.array(pids, dtype="Int64"),
            "video": [videos[int(v)].title for v in assigned["video_id"].tolist()],
            "video_id": assigned["video_id"].astype("int64").to_numpy(),
            "track": assigned["track_id"].astype("int64").to_numpy(),
            "frame": np.asarray(frames, dtype="int64"),
            **{c: assigned[c].astype("float32").to_numpy() for c in ("x1", "y1", "x2", "y2")},
            "phash": [phash_hex(v) for v in assigned["phash"].tolist()],
            "group": assigned["phash_group"].astype("Int64").array,
        }
    )
    _add_label_columns(out, assigned, taxonomy)
    return out, assigned["path"].astype(str).tolist()


def _add_label_columns(out: pd.DataFrame, assigned: pd.DataFrame, taxonomy: Taxonomy) -> None:
    """Each attribute's value and each label's provenance, as the contract stores them."""
    for attr in taxonomy.attributes:
        if attr.kind == "identity":
            continue
        column = assigned[attr.name] if attr.name in assigned.columns else pd.Series([None] * len(assigned))
        convert = _multi if attr.multilabel else _single
        out[attr.name] = pd.Series([convert(v) for v in column.tolist()], dtype=object)
    for name in provenance_columns(taxonomy):
        column = assigned[name] if name in assigned.columns else pd.Series([None] * len(assigned))
        values = [_single(v) for v in column.tolist()]
        bad = sorted({v for v in values if v is not None} - set(PROVENANCES))
        if bad:  # the store validates provenance on write; anything else is a bug upstream
            raise ValueError(f"unknown provenance {bad[0]!r} in {name}; valid: {', '.join(PROVENANCES)}")
        out[name] = pd.Series(values, dtype=object)


class StoreFingerprint:
    """sha256 over the exported store rows (crop, box, hash, group, identity, subset, labels and their
    provenance), in crop-id order, fed a frame of rows at a time (frames in crop-id order).

    It changes exactly when what a release would contain changes (a click turned into an accepted
    prediction with the same value is a change); it holds no time stamps, so the same store and
    configuration always give the same fingerprint.
    """

    def __init__(self, taxonomy: Taxonomy):
        self._wanted = [*attribute_columns(taxonomy), *provenance_columns(taxonomy)]
        self._digest = hashlib.sha256(b"[")
        self._rows = 0

    def update(self, frame: pd.DataFrame) -> None:
        # The JSON array of every row, hashed a frame at a time: the same bytes as one to_json of all
        # the rows (each frame's "[...]" without its brackets, frames joined by commas).
        if frame.empty:
            return
        rows = frame[list(FRAME_COLUMNS) + [c for c in self._wanted if c in frame.columns]].copy()
        for c in ("x1", "y1", "x2", "y2"):
            # float32 is the release's box precision; round-tripping through it makes the hash backend-independent.
            rows[c] = rows[c].astype("float32").astype("float64")
        for c in ("phash", "phash_group", "identity"):
            rows[c] = rows[c].astype("Int64")
        text = rows.to_json(orient="values", double_precision=15)
        self._digest.update((("," if self._rows else "") + text[1:-1]).encode("utf-8"))
        self._rows += len(rows)

    def hexdigest(self) -> str:
        digest = self._digest.copy()
        digest.update(b"]")
        return digest.hexdigest()


def store_fingerprint(frame: pd.DataFrame, taxonomy: Taxonomy) -> str:
    """The :class:`StoreFingerprint` of ``frame``'s rows, in any order."""
    fingerprint = StoreFingerprint(taxonomy)
    order = np.argsort(frame["crop_id"].to_numpy(), kind="stable")
    # a chunk of rows at a time: no sorted copy of the frame and its text (a gigabyte at 2,500,000 crops)
    for start in range(0, len(order), FINGERPRINT_CHUNK):
        fingerprint.update(frame.iloc[order[start:start + FINGERPRINT_CHUNK]])
    return fingerprint.hexdigest()


# -- captions and question/answer pairs ---------------------------------------------------------------

_GENDER_NOUN = {"male": "man", "female": "woman"}
_AGE_NOUN = {  # (male, female, unknown gender)
    "child": ("boy", "girl", "child"),
    "teenager": ("teenage boy", "teenage girl", "teenager"),
}
_AGE_ADJ = {"young_adult": "young adult", "middle_aged": "middle-aged", "elderly": "elderly"}
_HEIGHT_ADJ = {"short": "short", "tall": "tall"}
_OF = {
    "physique": {"thin": "slim build", "medium": "medium build", "heavy": "heavy build"},
    "height": {"average": "average height"},
}
_BODY = {
    "standing": "standing", "walking": "walking", "running": "running", "sitting": "sitting",
    "squatting": "squatting or kneeling", "lying": "lying down", "bending": "bending over",
}  # fmt: skip
_ARM = {
    "arms_down": "with arms down", "arms_crossed": "with arms crossed",
    "hands_in_pockets": "with hands in pockets or on hips", "arm_raised": "with an arm raised",
    "holding_object": "holding something", "hand_to_face": "with a hand to the face", "gesturing": "gesturing",
}  # fmt: skip
_EMOTION = {
    "happiness": "happy", "sadness": "sad", "anger": "angry", "fear": "afraid",
    "surprise": "surprised", "disgust": "disgusted",
}  # fmt: skip
_SHIPPED = {"gender", "age", "physique", "height", "body_posture", "arm_posture", "expression"}
QUESTIONS = {
    "gender": "Is the person in the image a man or a woman?",
    "age": "Which age group does the person in the image belong to?",
    "physique": "What is the build of the person in the image?",
    "height": "How tall is the person in the image?",
    "body_posture": "What is the body posture of the person in the image?",
    "arm_posture": "What are the arms of the person in the image doing?",
    "expression": "Which facial expressions does the person in the image show?",
}


def _known(taxonomy: Taxonomy, labels: Mapping[str, object]) -> dict[str, object]:
    """Labels that carry information: present, not "unsure", attribute known to the taxonomy."""
    out: dict[str, object] = {}
    for attr in taxonomy.attributes:
        if attr.kind == "identity":
            continue
        value = labels.get(attr.name)
        if attr.multilabel:
            values = _multi(value)
            if values:
                values = [v for v in values if v != attr.unsure_value]
                if values:
                    out[attr.name] = values
        else:
            text = _single(value)
            if text is not None and text != attr.unsure_value:
                out[attr.name] = text
    return out


def _value_label(taxonomy: Taxonomy, attribute: str, value: str) -> str:
    for v in taxonomy.attribute(attribute).values:
        if v.name == value:
            return v.label
    return value


def caption(labels: Mapping[str, object], taxonomy: Taxonomy) -> str:
    """One English sentence from a crop's labels, e.g. "A young adult woman of medium build, standing
    with arms crossed, looking happy." Missing and "unsure" parts are left out; with nothing known
    the caption is "A person." Attributes of a custom taxonomy are appended as "Label: value."."""
    known = _known(taxonomy, labels)
    gender, age = known.get("gender"), known.get("age")
    g = {"male": 0, "female": 1}.get(gender, 2) if isinstance(gender, str) else 2
    adjectives: list[str] = []
    if known.get("height") in _HEIGHT_ADJ:
        adjectives.append(_HEIGHT_ADJ[known["height"]])
    if age in _AGE_NOUN:
        noun = _AGE_NOUN[age][g]
    else:
        if age in _AGE_ADJ:
            adjectives.append(_AGE_ADJ[age])
        noun = _GENDER_NOUN.get(gender, "person") if isinstance(gender, str) else "person"
    phrase = " ".join([*adjectives, noun])
    of_parts = [_OF[a][known[a]] for a in ("physique", "height") if known.get(a) in _OF[a]]
    if of_parts:
        phrase += " of " + " and ".join(of_parts)
    article = "An" if phrase[0] in "aeiou" else "A"
    clauses = [f"{article} {phrase}"]
    posture = [p for p in (_BODY.get(known.get("body_posture")), _ARM.get(known.get("arm_posture"))) if p]
    if posture:
        clauses.append(" ".join(posture))
    chosen = set(known.get("expression") or [])
    order = taxonomy.attribute("expression").value_names if "expression" in taxonomy.names else ()
    emotions = [e for e in order if e in chosen]  # taxonomy order, whatever order the labels came in
    feelings = [_EMOTION[e] for e in emotions if e in _EMOTION]
    if feelings:
        clauses.append("looking " + _join_words(feelings))
    elif "neutral" in emotions:
        clauses.append("with a neutral expression")
    sentence = ", ".join(clauses) + "."
    extra = []
    for name, value in known.items():
        if name in _SHIPPED:
            continue
        shown = ", ".join(_value_label(taxonomy, name, v) for v in value) if isinstance(value, list) else (
            _value_label(taxonomy, name, value)
        )
        extra.append(f"{name.replace('_', ' ').capitalize()}: {shown.lower()}.")
    return " ".join([sentence, *extra])


def _join_words(words: list[str]) -> str:
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def qa_pairs(labels: Mapping[str, object], taxonomy: Taxonomy) -> list[dict]:
    """One question/answer pair per known (present, not "unsure") attribute, with the answer options."""
    known = _known(taxonomy, labels)
    pairs = []
    for attr in taxonomy.attributes:
        if attr.name not in known:
            continue
        value = known[attr.name]
        options = [v.label for v in attr.values if not v.unsure]
        answer = (
            ", ".join(_value_label(taxonomy, attr.name, v) for v in value)
            if isinstance(value, list)
            else _value_label(taxonomy, attr.name, value)
        )
        question = QUESTIONS.get(attr.name, f"What is the {attr.name.replace('_', ' ')} of the person in the image?")
        pairs.append(
            {"attribute": attr.name, "question": question, "answer": answer, "options": options,
             "multilabel": attr.multilabel}
        )  # fmt: skip
    return pairs


# Stand-ins for a row's crop id and file while its JSON line is built once per distinct label set; NUL
# characters cannot occur in a caption or an answer, so each appears exactly once in the text.
_CROP_MARK, _FILE_MARK = "\x00crop_id\x00", "\x00file\x00"
_CROP_JSON, _FILE_JSON = json.dumps(_CROP_MARK), json.dumps(_FILE_MARK)


def _line_template(obj: dict) -> tuple[str, str, str]:
    """``json.dumps({"crop_id": ..., "file": ..., **obj}, sort_keys=True)`` cut around those two values."""
    text = json.dumps({**obj, "crop_id": _CROP_MARK, "file": _FILE_MARK}, sort_keys=True)
    head, rest = text.split(_CROP_JSON)
    middle, tail = rest.split(_FILE_JSON)
    return head, middle, tail


def iter_jsonl(annotations: pd.DataFrame, taxonomy: Taxonomy) -> Iterator[tuple[str, list[str]]]:
    """Per annotation row (in the table's order, i.e. by crop id): its captions.jsonl line and its
    qa.jsonl lines, each ``json.dumps({"crop_id", "file", ...}, sort_keys=True)``.

    Rows are converted a chunk at a time, so a caller writing the lines out holds neither a dict per
    row nor the files' text. Building a caption, its pairs and their JSON per row took minutes at
    2,500,000 crops, so lines are built from templates that only lack the crop id and file: a QA
    pair depends on one attribute's value (one template per value), a caption on the whole label
    set (templates of up to CAPTION_MEMO label sets are kept, the rest are built per row).
    """
    attrs = attribute_columns(taxonomy)
    columns = annotations[["crop_id", "file", *attrs]]
    captions: dict[tuple, tuple[str, str, str]] = {}
    pairs: dict[tuple[str, object], list[tuple[str, str, str]]] = {}
    for start in range(0, len(columns), FINGERPRINT_CHUNK):
        for row in columns.iloc[start:start + FINGERPRINT_CHUNK].itertuples(index=False, name=None):
            crop_id, file, values = int(row[0]), json.dumps(row[1]), row[2:]
            key = tuple(tuple(v) if isinstance(v, list) else (None if missing(v) else v) for v in values)
            templates = [captions.get(key)]
            if templates[0] is None:
                templates[0] = _line_template({"caption": caption(dict(zip(attrs, values, strict=True)), taxonomy)})
                if len(captions) < CAPTION_MEMO:
                    captions[key] = templates[0]
            for attr, k, value in zip(attrs, key, values, strict=True):
                known = pairs.get((attr, k))
                if known is None:  # qa_pairs of one attribute's label: the pair it gives among all of them
                    known = pairs[(attr, k)] = [_line_template(p) for p in qa_pairs({attr: value}, taxonomy)]
                templates += known
            lines = [f"{head}{crop_id}{middle}{file}{tail}" for head, middle, tail in templates]
            yield lines[0], lines[1:]


def jsonl_lines(annotations: pd.DataFrame, taxonomy: Taxonomy) -> tuple[list[str], list[str]]:
    """The lines of captions.jsonl and qa.jsonl (sorted by crop id, one JSON object per line)."""
    captions: list[str] = []
    qa: list[str] = []
    for line, pairs in iter_jsonl(annotations, taxonomy):
        captions.append(line)
        qa += pairs
    return captions, qa


def read_annotations(path: Path, taxonomy: Taxonomy) -> pd.DataFrame:
    """annotations.parquet as a DataFrame: Int64 identity/group, multi-label cells as lists. Raises on
    an unreadable file (callers decide whether that is a UserError or a verification problem)."""
    df = pq.read_table(path).to_pandas()
    for col in ("identity", "group"):
        if col in df.columns:
            df[col] = df[col].astype("Int64")
    for attr in taxonomy.attributes:
        if attr.multilabel and attr.name in df.columns:
            df[attr.name] = [None if v is None else list(v) for v in df[attr.name].tolist()]
    return df
