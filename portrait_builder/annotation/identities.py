"""The characters of each movie outside the app: list, rename, merge, and find-or-create by name
(for ``portrait labels import``).

A merge writes new label rows (the history keeps the old ones); the annotation service runs it
(:func:`portrait_builder.annotation.service.merge_identities`, the characters part of the service), so it is one action in the merging
annotator's history that the app's undo reverses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, load_only

from portrait_builder.annotation.types import GENDER  # the attribute an identity's gender is labelled as
from portrait_builder.errors import UserError
from portrait_builder.store.labels import LabelRecord, add_label
from portrait_builder.store.models import Crop, CurrentLabel, Identity, Video
from portrait_builder.taxonomy import Taxonomy

log = logging.getLogger(__name__)

NAME_PREFIX = "name:"  # forces a name in an import file when it looks like an id or a taxonomy value


@dataclass(frozen=True)
class CharacterInfo:
    """One character (identity) of a movie, as ``portrait identities list`` shows it."""

    id: int
    video_id: int
    video: str  # the movie's title
    name: str | None
    gender: str | None
    crops: int  # crops whose current identity label is this character
    exemplar_crop_id: int | None
    exemplar_path: str | None  # relative to the crop root


@dataclass(frozen=True)
class MergeResult:
    keep: CharacterInfo  # after the merge
    other: CharacterInfo  # after the merge (no crops left)
    moved: int  # crops relabelled from OTHER to KEEP
    genders: int  # gender labels changed to KEEP's gender
    annotator: str


def identity_attribute(taxonomy: Taxonomy) -> str:
    name = next((a.name for a in taxonomy.attributes if a.kind == "identity"), None)
    if name is None:
        raise UserError(f"taxonomy {taxonomy.name} has no identity attribute")
    return name


def name_key(name: str) -> str:
    """How names are compared: surrounding spaces and letter case do not make another character."""
    return " ".join(name.split()).casefold()


def movie_id(s: Session, video: str | int) -> int:
    """The id of the movie given by id, title or path (``--video`` of the commands that take one); one
    UserError line listing the movies when none matches, or naming the ids when several do."""
    text = str(video).strip()
    query = select(Video.id).where(or_(Video.title == text, Video.path == text))
    if text.isdigit():
        query = select(Video.id).where(or_(Video.id == int(text), Video.title == text, Video.path == text))
    ids = list(s.scalars(query))
    if len(ids) > 1:
        raise UserError(f"{len(ids)} movies match {text!r} (ids {', '.join(map(str, ids))}); give the movie id")
    if not ids:
        movies = s.execute(select(Video.id, Video.title).order_by(Video.id).limit(11)).all()
        if not movies:
            raise UserError(f"no movie {text!r}: the project has no movies yet")
        listed = ", ".join(f"{m.id} {m.title!r}" for m in movies[:10]) + (", ..." if len(movies) > 10 else "")
        raise UserError(f"no movie {text!r} (by id, title or path); movies: {listed}")
    return ids[0]


def _characters(s: Session, taxonomy: Taxonomy, where=None) -> list[CharacterInfo]:
    ident_attr = identity_attribute(taxonomy)
    query = (
        select(Identity.id, Identity.video_id, Video.title, Identity.name, Identity.gender,
               Identity.exemplar_crop_id, Crop.path)
        .join(Video, Video.id == Identity.video_id)
        .outerjoin(Crop, Crop.id == Identity.exemplar_crop_id)
        .order_by(Identity.video_id, Identity.id)
    )  # fmt: skip
    if where is not None:
        query = query.where(where)
    rows = s.execute(query).all()
    if not rows:
        return []
    counts = crop_counts(s, ident_attr, [r.id for r in rows])
    return [
        CharacterInfo(r.id, r.video_id, r.title, r.name, r.gender, counts.get(r.id, 0), r.exemplar_crop_id, r.path)
        for r in rows
    ]


def crop_counts(s: Session, ident_attr: str, identity_ids: list[int]) -> dict[int, int]:
    """How many crops each of ``identity_ids`` is the current identity label of (absent: none)."""
    rows = s.execute(
        select(CurrentLabel.value, func.count())
        .where(CurrentLabel.attribute == ident_attr, CurrentLabel.value.in_([str(i) for i in identity_ids]))
        .group_by(CurrentLabel.value)
    ).all()
    return {int(value): int(n) for value, n in rows}


def list_identities(project, video: str | int | None = None) -> list[CharacterInfo]:
    """Every character of the project (or of one movie, by id, title or path), by movie then id."""
    with project.session() as s:
        return _characters(s, project.taxonomy, None if video is None else Video.id == movie_id(s, video))


def get_identity(s: Session, taxonomy: Taxonomy, identity_id: int) -> CharacterInfo:
    found = _characters(s, taxonomy, Identity.id == int(identity_id))
    if not found:
        raise UserError(f"no character with id {identity_id}; see `portrait identities list`")
    return found[0]


def _check_unique_name(s: Session, video_id: int, name: str, identity_id: int | None) -> None:
    """Names identify characters in import files: two characters of one movie may not share one."""
    for other_id, other_name in s.execute(
        select(Identity.id, Identity.name).where(Identity.video_id == video_id, Identity.name.is_not(None))
    ):
        if other_id != identity_id and name_key(other_name) == name_key(name):
            raise UserError(
                f"character {other_id} of this movie is already named {other_name!r}; if they are one person, "
                f"merge them with `portrait identities merge`"
            )


def rename_identity(project, identity_id: int, name: str) -> CharacterInfo:
    """Give a character a new name (unique within its movie, letter case aside)."""
    name = " ".join((name or "").split())
    if not name:
        raise UserError("the new name must not be empty")

    def tx(s: Session) -> CharacterInfo:
        identity = s.get(Identity, int(identity_id))
        if identity is None:
            raise UserError(f"no character with id {identity_id}; see `portrait identities list`")
        _check_unique_name(s, identity.video_id, name, identity.id)
        # An UPDATE statement rather than the ORM's flush: on a team store row-level security hides the
        # row from a login without the right, the update matches nothing, and that must read as a refusal.
        done = s.execute(update(Identity).where(Identity.id == identity.id).values(name=name)).rowcount
        if not done:
            login = project.login.name if getattr(project, "login", None) is not None else None
            raise UserError(f"the database refused to rename character {identity.id}"
                            + (f" for login {login}" if login else "")
                            + ": renaming needs the right to label identities (ask a maintainer if you need it)")
        s.expire(identity)
        return get_identity(s, project.taxonomy, identity.id)

    return project.run_write(tx)


def preload(s: Session, crop_ids: list[int], identity_values: list[str | None] = ()) -> list:
    """Load crops (id and movie only) and identities into the session in a few queries, so that
    :func:`~portrait_builder.store.labels.add_label`'s per-row ``session.get`` checks hit the identity
    map instead of the database (about a third of the time per label). The returned list holds them:
    the identity map keeps only weak references."""
    held: list = []
    for model, ids in ((Crop, sorted(set(crop_ids))),
                       (Identity, sorted({int(v) for v in identity_values if v and str(v).isdigit()}))):  # fmt: skip
        for i in range(0, len(ids), 900):  # stays under SQLite's bound-parameter limit
            query = select(model).where(model.id.in_(ids[i:i + 900]))
            if model is Crop:
                query = query.options(load_only(Crop.id, Crop.video_id))
            held += s.scalars(query).all()
    return held


def merge_labels(
    s: Session, taxonomy: Taxonomy, keep_id: int, other_id: int, *, annotator_id: int | None, stamp: float,
    source: str = "app",
) -> tuple[list[LabelRecord], int, int]:
    """Move every crop whose current identity is ``other_id`` to ``keep_id``: new label rows (identity,
    and gender where KEEP has one and the crop's differs), all stamped ``stamp`` so they are one action.

    Returns (records, crops moved, gender labels changed). Refuses characters of two different movies.
    """
    if int(keep_id) == int(other_id):
        raise UserError(f"cannot merge character {keep_id} with itself")
    keep = s.get(Identity, int(keep_id))
    other = s.get(Identity, int(other_id))
    for ident, given in ((keep, keep_id), (other, other_id)):
        if ident is None:
            raise UserError(f"no character with id {given}; see `portrait identities list`")
    if keep.video_id != other.video_id:
        titles = dict(s.execute(select(Video.id, Video.title).where(Video.id.in_([keep.video_id, other.video_id]))).all())
        raise UserError(
            f"characters {keep.id} (movie {titles.get(keep.video_id)!r}) and {other.id} (movie "
            f"{titles.get(other.video_id)!r}) are in different movies; only characters of one movie can be merged"
        )
    ident_attr = identity_attribute(taxonomy)
    crop_ids = list(
        s.scalars(
            select(CurrentLabel.crop_id)
            .where(CurrentLabel.attribute == ident_attr, CurrentLabel.value == str(other.id))
            .order_by(CurrentLabel.crop_id)
        )
    )
    genders: dict[int, str | None] = {}
    if keep.gender is not None and GENDER in taxonomy.names and crop_ids:
        genders = dict(
            s.execute(
                select(CurrentLabel.crop_id, CurrentLabel.value)
                .where(CurrentLabel.attribute == GENDER, CurrentLabel.crop_id.in_(crop_ids))
            ).all()
        )
    held = preload(s, crop_ids)
    records: list[LabelRecord] = []
    changed_gender = 0
    for crop_id in crop_ids:
        records.append(add_label(s, taxonomy, crop_id, ident_attr, str(keep.id), annotator_id=annotator_id,
                                 source=source, created_at=stamp))  # fmt: skip
        if keep.gender is not None and GENDER in taxonomy.names and genders.get(crop_id) != keep.gender:
            records.append(add_label(s, taxonomy, crop_id, GENDER, keep.gender, annotator_id=annotator_id,
                                     source=source, created_at=stamp))  # fmt: skip
            changed_gender += 1
    del held
    log.info("merged character %d into %d: %d crops, %d gender labels", other.id, keep.id, len(crop_ids), changed_gender)
    return records, len(crop_ids), changed_gender


@dataclass(frozen=True)
class CreatedIdentity:
    id: int
    video_id: int
    video: str
    name: str
    gender: str


def identity_name(taxonomy: Taxonomy, value: str) -> str | None:
    """The character name an import value stands for, or None when it is an id or a taxonomy value
    (``unknown``, ``unsure``). ``name:`` forces a name (a character called ``42`` or ``Unknown``)."""
    text = value.strip()
    if text[: len(NAME_PREFIX)].casefold() == NAME_PREFIX:
        return " ".join(text[len(NAME_PREFIX):].split()) or None
    if text.isdigit():
        return None
    if text in {v.name for v in taxonomy.attribute(identity_attribute(taxonomy)).values}:
        return None
    return " ".join(text.split())


def _unsure(taxonomy: Taxonomy, attribute: str) -> str | None:
    return next((v.name for v in taxonomy.attribute(attribute).values if v.unsure), None)


def resolve_names(
    s: Session,
    taxonomy: Taxonomy,
    named: list[tuple[int, int, str, int | None]],
    genders: dict[int, list[tuple[int, str]]],
) -> tuple[dict[int, str | None], list[tuple[int, str]], list[CreatedIdentity]]:
    """Turn character names of an import file into identity ids, creating characters on first use.

    ``named``: (row number, crop id, name, annotator id) of the identity rows that give a name.
    ``genders``: crop id -> (row number, value) of the file's gender rows. A name matches a character
    of the crop's movie (:func:`name_key`); a new character takes the gender of the file's gender rows
    for its crops (``unsure`` when there are none; two different genders are a bad row), its first
    crop as exemplar and the row's annotator as creator. Returns (row number -> identity id text, or
    None for a row held back because its character's first row has the problem, (row number, problem)
    pairs, created characters). Writes only through ``s`` (the caller's one
    transaction), so a bad row elsewhere in the file rolls the new characters back too.
    """
    crop_ids = sorted({crop_id for _, crop_id, _, _ in named})
    video_of: dict[int, int] = {}
    for i in range(0, len(crop_ids), 900):  # stays under SQLite's bound-parameter limit
        video_of.update(s.execute(select(Crop.id, Crop.video_id).where(Crop.id.in_(crop_ids[i:i + 900]))).all())
    videos = sorted(set(video_of.values()))
    titles = dict(s.execute(select(Video.id, Video.title).where(Video.id.in_(videos))).all()) if videos else {}
    existing: dict[tuple[int, str], list[int]] = {}
    if videos:
        for ident_id, video_id, name in s.execute(
            select(Identity.id, Identity.video_id, Identity.name)
            .where(Identity.video_id.in_(videos), Identity.name.is_not(None))
            .order_by(Identity.id)
        ):
            existing.setdefault((video_id, name_key(name)), []).append(ident_id)
    resolved: dict[int, str] = {}
    problems: list[tuple[int, str]] = []
    pending: dict[tuple[int, str], list[tuple[int, int, str, int | None]]] = {}
    for row in named:
        n, crop_id, name, _ = row
        video_id = video_of.get(crop_id)
        if video_id is None:
            continue  # the label itself reports the missing crop
        matches = existing.get((video_id, name_key(name)), [])
        if len(matches) > 1:
            problems.append((n, f"{len(matches)} characters of movie {titles[video_id]!r} are named {name!r} "
                                f"(ids {', '.join(map(str, matches))}); give the id"))  # fmt: skip
        elif matches:
            resolved[n] = str(matches[0])
        else:
            pending.setdefault((video_id, name_key(name)), []).append(row)
    has_gender = GENDER in taxonomy.names
    unsure = _unsure(taxonomy, GENDER) if has_gender else None
    created: list[CreatedIdentity] = []
    for (video_id, _), rows in pending.items():
        first_row, exemplar, name, creator = rows[0]
        given: dict[str, int] = {}  # gender -> first row giving it
        for _, crop_id, _, _ in rows:
            for gn, value in genders.get(crop_id, []):
                try:
                    text = taxonomy.encode(GENDER, value)
                except UserError:
                    continue  # the gender row itself reports the bad value
                if text != unsure:
                    given.setdefault(text, gn)
        if len(given) > 1:
            said = " and ".join(f"{g} (row {r})" for g, r in sorted(given.items(), key=lambda kv: kv[1]))
            problems.append((first_row, f"new character {name!r} of movie {titles[video_id]!r} is given two genders: "
                                        f"{said}"))  # fmt: skip
            resolved.update((n, None) for n, _, _, _ in rows[1:])  # one line for the character, not one per row
            continue
        gender = next(iter(given), unsure)
        identity = Identity(video_id=video_id, name=name, gender=gender, exemplar_crop_id=exemplar, created_by=creator)
        s.add(identity)
        s.flush()
        created.append(CreatedIdentity(identity.id, video_id, titles[video_id], name, gender))
        for n, _, _, _ in rows:
            resolved[n] = str(identity.id)
    return resolved, problems, created
