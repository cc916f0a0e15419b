"""The Qt-free annotation service: annotators and their rights, leased work queues, identity and
attribute labelling, undo/redo from the label history, progress, review and agreement.

Everything it returns is a plain frozen dataclass; sessions and ORM rows never leave this module.
Every labelling call is one committed write transaction through
:func:`portrait_builder.store.labels.add_label`, so killing the app loses at most the click in flight.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from portrait_builder.annotation.identities import MergeResult, get_identity, merge_labels
from portrait_builder.annotation.kappa import cohen_kappa
from portrait_builder.errors import UserError
from portrait_builder.store.labels import LabelRecord, add_label
from portrait_builder.store.models import ROLES, Annotator, Crop, CurrentLabel, Identity, Label, Lease
from portrait_builder.store.project import Project
from portrait_builder.store.security import create_login
from portrait_builder.taxonomy import Taxonomy

log = logging.getLogger(__name__)

GENDER = "gender"  # set together with identity (the paper: gender is a property of an identity)
REVIEW_ROLES = ("reviewer", "maintainer")
LEASE_SECONDS = 15 * 60.0  # long enough for a coffee break; renewed while the annotator works
CLAIM_BATCH = 16  # small batches: a crashed client strands at most this many crops until expiry
CHARACTERS_TTL = 10.0  # seconds before a movie's character list is read again
HISTORY_WINDOW = 2000  # labels of this annotator replayed to rebuild undo/redo after a restart
MAX_STACK = 500
CALLER_SOURCES = ("app", "synthetic")  # what set_label & co. accept; review/undo/redo are set here


# Built once: a fresh alias per query costs more than the query on the click path.
_CL = aliased(CurrentLabel, name="cl")
_LS = aliased(Lease, name="ls")


class AnnotationPermissionError(UserError):
    """The annotator's role or assigned attribute does not allow this write."""


# -- plain data out ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnnotatorInfo:
    id: int
    name: str
    role: str
    attribute: str | None
    db_login: str | None = None  # the person's PostgreSQL login (team stores)
    disabled: bool = False


@dataclass(frozen=True)
class CropItem:
    """One crop as the app shows it. ``labels`` maps attribute -> decoded current value."""

    id: int
    video_id: int
    track_id: int
    frame_index: int
    path: str  # relative to the crop root
    image_path: Path
    labels: dict = field(default_factory=dict)


@dataclass(frozen=True)
class IdentityInfo:
    id: int
    video_id: int
    name: str | None
    gender: str | None
    exemplar_crop_id: int | None


@dataclass(frozen=True)
class Exemplar:
    """One character of a movie as the identity grid shows it."""

    identity_id: int
    name: str | None
    gender: str | None
    crop_count: int
    exemplar_crop_id: int | None
    image_path: Path | None
    similarity: float | None  # cosine similarity to the current crop; None without embeddings


@dataclass(frozen=True)
class TrackCrop:
    """One crop of the current crop's track as the identity view's strip shows it.

    ``labelled``: the crop already has a current identity label. The strip shows it (the annotator
    keeps the whole track in view) but leaves it out of whole-track labelling unless ticked on purpose.
    """

    id: int
    frame_index: int
    image_path: Path
    identity: str | None  # current identity value (stored text) or None; hidden (None) for a second opinion
    labelled: bool = False
    label: str | None = None  # the current identity for people ("Hero", "ID 7", "Unknown person"); None as identity


@dataclass(frozen=True)
class Progress:
    attribute: str
    done: int
    remaining: int
    total: int
    labels_last_hour: int
    labels_per_hour: float


@dataclass(frozen=True)
class ActionLabel:
    crop_id: int
    attribute: str
    value: str | None  # stored text
    label_id: int


@dataclass(frozen=True)
class Action:
    """One click: the labels it wrote (several crops and/or identity+gender)."""

    source: str
    labels: tuple[ActionLabel, ...]

    @property
    def crop_ids(self) -> list[int]:
        return list(dict.fromkeys(lab.crop_id for lab in self.labels))


@dataclass(frozen=True)
class ReviewRow:
    crop_id: int
    video_id: int
    attribute: str
    value: str | list[str] | None
    annotator: str | None
    label_id: int
    image_path: Path


@dataclass(frozen=True)
class KappaResult:
    attribute: str
    annotator_a: str
    annotator_b: str
    n: int
    kappa: float


# -- annotators ----------------------------------------------------------------------------------
def _info(row: Annotator) -> AnnotatorInfo:
    return AnnotatorInfo(row.id, row.name, row.role, row.attribute, row.db_login, row.disabled_at is not None)


def add_annotator(
    project: Project,
    name: str,
    role: str = "annotator",
    attribute: str | None = None,
    *,
    db_login: str | None = None,
    password: str | None = None,
) -> AnnotatorInfo:
    """Register an annotator. Plain annotators need an assigned attribute; reviewers and maintainers may have one.

    ``db_login`` (PostgreSQL stores): also create that person's login role (with ``password``; an
    existing login is reused as it is) in the project's group role, in the same transaction.
    """
    name = (name or "").strip()
    if not name:
        raise UserError("annotator name must not be empty")
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; valid roles: {', '.join(ROLES)}")
    if attribute is not None:
        project.taxonomy.attribute(attribute)  # raises with the valid names
    elif role == "annotator":
        raise UserError(
            f"an annotator needs an assigned attribute (--attribute); valid: {', '.join(project.taxonomy.names)}"
        )

    def tx(s: Session) -> AnnotatorInfo:
        if s.scalar(select(Annotator.id).where(Annotator.name == name)) is not None:
            raise UserError(f"annotator {name!r} already exists")
        row = Annotator(name=name, role=role, attribute=attribute, db_login=db_login)
        s.add(row)
        s.flush()
        if db_login is not None:
            create_login(s.connection(), db_login, role, password)
        return _info(row)

    if db_login is not None:
        from portrait_builder.annotation.team import check_team_store

        check_team_store(project, db_login)
        project.record_identity_attribute()
    return project.run_write(tx)


def list_annotators(project: Project) -> list[AnnotatorInfo]:
    with project.session() as s:
        return [_info(r) for r in s.scalars(select(Annotator).order_by(Annotator.name))]


def get_annotator(project: Project, name: str) -> AnnotatorInfo:
    with project.session() as s:
        row = s.scalar(select(Annotator).where(Annotator.name == name))
        if row is None:
            raise UserError(f"no annotator {name!r} in {project.root}; add one with `portrait annotators add`")
        return _info(row)


def merge_identities(project: Project, keep_id: int, other_id: int, annotator: str | None) -> MergeResult:
    """Merge character ``other_id`` into ``keep_id`` as ``annotator`` (on PostgreSQL: the login; the
    name is a check), who needs the right to label identities: one action in that annotator's
    history, which the app's undo reverses. See :meth:`AnnotationService.merge_identities`."""
    ident_attr = next((a.name for a in project.taxonomy.attributes if a.kind == "identity"), None)
    service = AnnotationService(project, annotator, ident_attr)
    try:
        return service.merge_identities(keep_id, other_id)
    finally:
        service.close(release_leases=False)  # the annotator's app may hold leases on this queue right now


def _embedding(blob: bytes | None) -> np.ndarray | None:
    if not blob:
        return None
    vec = np.frombuffer(blob, dtype="<f2").astype(np.float32)
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else None


# -- the service ---------------------------------------------------------------------------------
def _identity_values(s: Session, ident_attr: str, identity_id) -> dict[str, object]:
    """The labels one identity click writes: the identity and, when known, the identity's gender."""
    identity = s.get(Identity, int(identity_id))
    if identity is None:
        raise UserError(f"no identity with id {identity_id}")
    values: dict[str, object] = {ident_attr: str(identity.id)}
    if identity.gender is not None:
        values[GENDER] = identity.gender
    return values


class AnnotationService:
    """One annotator working on one attribute queue of a project.

    ``attribute`` defaults to the annotator's assigned attribute; plain annotators may not choose
    another. Reviewers and maintainers may open any queue and correct any label. With
    ``second_opinion`` the queue holds crops already labelled by someone else but not by this
    annotator (for agreement); the newest label becomes current, the history keeps both.
    """

    def __init__(
        self,
        project: Project,
        annotator_name: str | None,
        attribute: str | None = None,
        *,
        lease_seconds: float = LEASE_SECONDS,
        batch: int = CLAIM_BATCH,
        second_opinion: bool = False,
    ):
        self.project = project
        self.taxonomy: Taxonomy = project.taxonomy
        from portrait_builder.annotation.team import resolve_annotator

        # PostgreSQL: who labels is the login this connection uses; the name is only a check
        self.annotator = resolve_annotator(project, annotator_name)
        chosen = attribute or self.annotator.attribute
        if chosen is None and self.annotator.role in REVIEW_ROLES:
            chosen = self.taxonomy.names[0]  # reviewers without an assignment start on the first attribute
        if chosen is None:
            raise UserError(f"{self.annotator.name} has no assigned attribute; pass --attribute")
        self.taxonomy.attribute(chosen)
        if self.annotator.role == "annotator" and chosen not in self.writable_attributes:
            raise AnnotationPermissionError(
                f"{self.annotator.name} is assigned {self.annotator.attribute!r} and may not open the {chosen!r} queue"
            )
        self.attribute = chosen
        self.identity_attribute = next((a.name for a in self.taxonomy.attributes if a.kind == "identity"), None)
        # Second opinion: the queue is crops someone else labelled and this annotator has not, so
        # agreement (kappa) can be measured; their value is hidden from the item to avoid anchoring.
        self.second_opinion = bool(second_opinion)
        self.lease_seconds = float(lease_seconds)
        self.batch = int(batch)
        self._queue: deque[int] = deque()
        self._paths: dict[int, str] = {}  # relative image path of each claimed crop, for prefetching
        self._cursor = 0  # claims continue after the last claimed crop id, so they never rescan labelled rows
        self._last_renew = 0.0
        self._last_stamp = 0.0
        # Per movie: (read at, identity rows, exemplar embeddings). Characters change rarely; re-read
        # after our own new_identity and every CHARACTERS_TTL seconds for other annotators' ones.
        self._characters: dict[int, tuple[float, list, dict[int, np.ndarray | None]]] = {}
        self._done: list[Action] = []
        self._redo: list[tuple[Action, Action]] = []  # (original action, the undo that reverted it)
        self._keepalive = None
        if project.is_sqlite:
            # The store opens a fresh SQLite connection per session (NullPool). When the last
            # connection to a WAL database closes, SQLite checkpoints and deletes the WAL, which
            # costs milliseconds on every click; one idle connection held open avoids that.
            self._keepalive = project.engine.connect()
        self._rebuild_stacks()

    # -- rights --------------------------------------------------------------------------------
    @property
    def is_reviewer(self) -> bool:
        return self.annotator.role in REVIEW_ROLES

    @property
    def writable_attributes(self) -> frozenset[str]:
        if self.annotator.role in REVIEW_ROLES:
            return frozenset(self.taxonomy.names)
        own = self.annotator.attribute
        if own is None:
            return frozenset()
        if self.taxonomy.attribute(own).kind == "identity" and GENDER in self.taxonomy.names:
            return frozenset({own, GENDER})
        return frozenset({own})

    def _check_write(self, attributes: Iterable[str]) -> None:
        for attr in attributes:
            self.taxonomy.attribute(attr)
            if attr not in self.writable_attributes:
                raise AnnotationPermissionError(
                    f"{self.annotator.name} ({self.annotator.role}, assigned {self.annotator.attribute!r}) "
                    f"may not write {attr!r}"
                )

    def _check_review(self) -> None:
        if not self.is_reviewer:
            raise AnnotationPermissionError(
                f"{self.annotator.name} is an {self.annotator.role}; review needs a reviewer or maintainer"
            )

    # -- helpers -------------------------------------------------------------------------------
    def _stamp(self) -> float:
        # One timestamp per click groups its labels into one undoable action; strictly increasing.
        stamp = max(time.time(), self._last_stamp + 1e-6)
        self._last_stamp = stamp
        return stamp

    def _image_path(self, rel: str) -> Path:
        return self.project.crop_root / rel

    def _decode(self, attribute: str, text: str | None):
        return self.taxonomy.decode(attribute, text)

    def _is_pg(self) -> bool:
        return self.project.engine.dialect.name == "postgresql"

    def _insert_leases(self, s: Session, crop_ids: Sequence[int], expires: float) -> list[int]:
        """Insert leases for ``crop_ids`` that nobody holds; return the ids actually taken."""
        if not crop_ids:
            return []
        if self._is_pg():
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        rows = [
            {"attribute": self.attribute, "crop_id": c, "annotator_id": self.annotator.id, "expires_at": expires}
            for c in crop_ids
        ]
        stmt = insert(Lease).on_conflict_do_nothing(index_elements=["attribute", "crop_id"]).returning(Lease.crop_id)
        taken = set(s.scalars(stmt.values(rows)).all())  # one multi-row VALUES: batches are small
        return [c for c in crop_ids if c in taken]

    # -- queue ---------------------------------------------------------------------------------
    def claim(self, n: int | None = None) -> list[int]:
        """Lease up to ``n`` unlabelled, unleased crops of this attribute in one atomic transaction.

        PostgreSQL: ``SELECT ... FOR UPDATE OF crops SKIP LOCKED`` plus ``INSERT ... ON CONFLICT DO
        NOTHING`` (the unique (attribute, crop) lease decides any race). SQLite: the write
        transaction is ``BEGIN IMMEDIATE``, so claims are serialised.
        """
        n = n or self.batch
        attr = self.attribute

        def tx(s: Session) -> list[int]:
            now = time.time()
            # Crops stranded by a lapsed lease (a crashed or idle client) come back first.
            expired = list(
                s.scalars(delete(Lease).where(Lease.attribute == attr, Lease.expires_at < now).returning(Lease.crop_id))
            )
            cl, ls = _CL, _LS
            # NOT EXISTS rather than LEFT JOIN ... IS NULL: PostgreSQL estimates the anti-join of the
            # outer-join form at one row and sorts every crop (1.2 s at 250k crops); this form walks
            # the crops' primary key and stops after n rows (~3 ms).
            leased = select(ls.id).where(ls.crop_id == Crop.id, ls.attribute == attr).exists()
            base = select(Crop.id).where(~leased).order_by(Crop.id).limit(n)
            labelled = select(cl.crop_id).where(cl.crop_id == Crop.id, cl.attribute == attr, cl.value.is_not(None))
            if self.second_opinion:
                mine = select(Label.id).where(
                    Label.crop_id == Crop.id, Label.attribute == attr, Label.annotator_id == self.annotator.id
                )
                by_someone_else = labelled.where(or_(cl.annotator_id.is_(None), cl.annotator_id != self.annotator.id))
                base = base.where(by_someone_else.exists(), ~mine.exists())
            else:
                base = base.where(~labelled.exists())
            taken: list[int] = []
            windows = [base.where(Crop.id.in_(sorted(expired)[:n]))] if expired else []
            windows += [base.where(Crop.id > lower) for lower in dict.fromkeys((self._cursor, 0))]
            for query in windows:
                if self._is_pg():
                    query = query.with_for_update(of=Crop, skip_locked=True)
                rows = s.execute(query.add_columns(Crop.path).limit(n - len(taken))).all()
                self._paths.update((r[0], r[1]) for r in rows)
                taken += self._insert_leases(s, [r[0] for r in rows], now + self.lease_seconds)
                if len(taken) >= n:
                    break
            return taken

        taken = self.project.run_write(tx)
        if taken:
            self._cursor = max(self._cursor, max(taken))
            self._last_renew = time.time()
        self._queue.extend(c for c in taken if c not in self._queue)
        return taken

    def renew(self) -> int:
        """Extend this annotator's leases on the queue; returns how many were renewed."""
        expires = time.time() + self.lease_seconds

        def tx(s: Session) -> int:
            res = s.execute(
                update(Lease)
                .where(Lease.annotator_id == self.annotator.id, Lease.attribute == self.attribute)
                .values(expires_at=expires)
            )
            return res.rowcount or 0

        count = self.project.run_write(tx)
        self._last_renew = time.time()
        return count

    def release(self) -> None:
        """Give back every lease of this annotator on this queue (the app calls it on close)."""

        def tx(s: Session) -> None:
            s.execute(delete(Lease).where(Lease.annotator_id == self.annotator.id, Lease.attribute == self.attribute))

        self.project.run_write(tx)
        self._queue.clear()

    def close(self, *, release_leases: bool = True) -> None:
        """Release the leases and the idle connection; the service is unusable afterwards.

        ``release_leases=False`` keeps the leases (a one-off command acting as an annotator whose app
        may be open on the same queue)."""
        if release_leases:
            self.release()
        if self._keepalive is not None:
            self._keepalive.close()
            self._keepalive = None

    def __enter__(self) -> AnnotationService:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def held_leases(self) -> list[int]:
        with self.project.session() as s:
            return list(
                s.scalars(
                    select(Lease.crop_id)
                    .where(Lease.annotator_id == self.annotator.id, Lease.attribute == self.attribute)
                    .order_by(Lease.crop_id)
                )
            )

    def next_item(self) -> CropItem | None:
        """The next crop of this queue that is still unlabelled and still leased to us; None when done."""
        if time.time() - self._last_renew > self.lease_seconds / 3:
            self.renew()
        while True:
            if len(self._queue) <= self.batch // 4:
                self.claim()
            if not self._queue:
                return None
            crop_id = self._queue.popleft()
            self._paths.pop(crop_id, None)
            item = self._load(crop_id, require_lease=True)
            if item is None:
                continue
            if self.second_opinion:
                if not self._labelled_by_me(crop_id):
                    return item
            elif item.labels.get(self.attribute) is None:
                return item

    def skip(self, crop_id: int) -> None:
        """Put a crop back at the end of this annotator's queue (the lease is kept)."""
        if crop_id not in self._queue:
            self._queue.append(crop_id)

    def _labelled_by_me(self, crop_id: int) -> bool:
        with self.project.session() as s:
            return s.scalar(
                select(Label.id).where(
                    Label.crop_id == crop_id, Label.attribute == self.attribute, Label.annotator_id == self.annotator.id
                ).limit(1)
            ) is not None

    def upcoming(self, n: int = 8) -> list[Path]:
        """Image paths of the next ``n`` queued crops (no store query) so the app can prefetch them."""
        out = []
        for crop_id in list(self._queue)[:n]:
            rel = self._paths.get(crop_id)
            if rel is not None:
                out.append(self._image_path(rel))
        return out

    def get_item(self, crop_id: int) -> CropItem:
        item = self._load(crop_id, require_lease=False)
        if item is None:
            raise UserError(f"no crop with id {crop_id}")
        return item

    def _load(self, crop_id: int, *, require_lease: bool) -> CropItem | None:
        with self.project.session() as s:
            query = select(Crop.id, Crop.video_id, Crop.track_id, Crop.frame_index, Crop.path).where(Crop.id == crop_id)
            if require_lease:
                query = query.join(
                    Lease,
                    and_(
                        Lease.crop_id == Crop.id,
                        Lease.attribute == self.attribute,
                        Lease.annotator_id == self.annotator.id,
                    ),
                )
            row = s.execute(query).first()
            if row is None:
                return None
            labels = {
                a: self._decode(a, v)
                for a, v in s.execute(
                    select(CurrentLabel.attribute, CurrentLabel.value).where(
                        CurrentLabel.crop_id == crop_id, CurrentLabel.value.is_not(None)
                    )
                )
            }
        if self.second_opinion:  # do not show the first annotator's answer
            hidden = {self.attribute} | ({GENDER} if self.attribute == self.identity_attribute else set())
            labels = {a: v for a, v in labels.items() if a not in hidden}
        return CropItem(row.id, row.video_id, row.track_id, row.frame_index, row.path, self._image_path(row.path), labels)

    # -- writing -------------------------------------------------------------------------------
    def _write(self, fn, *, source: str, relabel: Sequence[int] = ()) -> Action:
        """Run ``fn(session, stamp) -> list[LabelRecord]`` as one click; record it for undo."""
        stamp = self._stamp()

        def tx(s: Session) -> list[LabelRecord]:
            records = fn(s, stamp)
            crop_ids = list({r.crop_id for r in records} | set(relabel))
            if crop_ids:
                s.execute(
                    delete(Lease).where(
                        Lease.annotator_id == self.annotator.id,
                        Lease.attribute == self.attribute,
                        Lease.crop_id.in_(crop_ids),
                    )
                )
            return records

        records = self.project.run_write(tx)
        action = Action(source, tuple(ActionLabel(r.crop_id, r.attribute, r.value, r.id) for r in records))
        self._push(action)
        return action

    def _push(self, action: Action) -> None:
        if not action.labels:
            return
        self._done.append(action)
        del self._done[:-MAX_STACK]
        self._redo.clear()

    def _labels(self, s: Session, crop_ids: Sequence[int], values: dict[str, object], stamp: float, source: str) -> list[LabelRecord]:
        out = []
        for crop_id in crop_ids:
            for attr, value in values.items():
                out.append(
                    add_label(s, self.taxonomy, int(crop_id), attr, value, annotator_id=self.annotator.id, source=source, created_at=stamp)
                )
        return out

    @staticmethod
    def _ids(crop_ids: int | Iterable[int]) -> list[int]:
        ids = [int(crop_ids)] if isinstance(crop_ids, (int, np.integer)) else [int(c) for c in crop_ids]
        if not ids:
            raise UserError("no crops given")
        return list(dict.fromkeys(ids))

    @staticmethod
    def _check_source(source: str) -> None:
        if source not in CALLER_SOURCES:
            raise ValueError(f"source must be one of {', '.join(CALLER_SOURCES)}, not {source!r}")

    def set_label(self, crop_ids: int | Iterable[int], attribute: str, value, *, source: str = "app") -> Action:
        """Label crops with one value (a list of names for a multi-label attribute). One transaction.

        An identity id given for the identity attribute goes through :meth:`assign_identity` (it sets gender too).
        """
        ids = self._ids(crop_ids)
        self._check_source(source)
        attr = self.taxonomy.attribute(attribute)
        if attr.kind == "identity" and str(value).isdigit():
            return self.assign_identity(ids, int(value), source=source)
        self._check_write([attribute])
        self.taxonomy.encode(attribute, value)  # fail before opening a transaction
        return self._write(lambda s, stamp: self._labels(s, ids, {attribute: value}, stamp, source), source=source)

    def _identity_attr(self) -> str:
        if self.identity_attribute is None:
            raise UserError(f"taxonomy {self.taxonomy.name} has no identity attribute")
        return self.identity_attribute

    def assign_identity(self, crop_ids: int | Iterable[int], identity_id: int, *, source: str = "app") -> Action:
        """Set identity and the identity's gender on the crops (one click on an exemplar)."""
        ids = self._ids(crop_ids)
        self._check_source(source)
        ident_attr = self._identity_attr()
        self._check_write([ident_attr, GENDER])

        def fn(s: Session, stamp: float) -> list[LabelRecord]:
            return self._labels(s, ids, _identity_values(s, ident_attr, identity_id), stamp, source)

        return self._write(fn, source=source)

    def new_identity(
        self,
        crop_id: int,
        gender: str,
        name: str | None = None,
        *,
        also: Iterable[int] = (),
        source: str = "app",
    ) -> IdentityInfo:
        """Create a character of the crop's movie with this crop as exemplar; label identity and gender.

        ``also``: more crops (e.g. the rest of the track) labelled with the new identity in the same click.
        """
        self._check_source(source)
        ident_attr = self._identity_attr()
        self._check_write([ident_attr, GENDER])
        gender = self.taxonomy.encode(GENDER, gender)
        created: list[IdentityInfo] = []

        def fn(s: Session, stamp: float) -> list[LabelRecord]:
            crop = s.get(Crop, int(crop_id))
            if crop is None:
                raise UserError(f"no crop with id {crop_id}")
            identity = Identity(
                video_id=crop.video_id,
                name=(name or None),
                gender=gender,
                exemplar_crop_id=crop.id,
                created_by=self.annotator.id,
                created_at=stamp,
            )
            s.add(identity)
            s.flush()
            created.clear()
            created.append(IdentityInfo(identity.id, identity.video_id, identity.name, identity.gender, crop.id))
            targets = list(dict.fromkeys([crop.id, *(int(c) for c in also)]))
            return self._labels(s, targets, {ident_attr: str(identity.id), GENDER: gender}, stamp, source)

        self._write(fn, source=source)
        info = created[0]
        self._characters.pop(info.video_id, None)
        return info

    def unknown_person(self, crop_ids: int | Iterable[int], gender: str, *, source: str = "app") -> Action:
        """No identity ('unknown') but still a gender."""
        ident_attr = self._identity_attr()
        unknown = next(v.name for v in self.taxonomy.attribute(ident_attr).values if not v.unsure)
        ids = self._ids(crop_ids)
        self._check_source(source)
        self._check_write([ident_attr, GENDER])
        self.taxonomy.encode(GENDER, gender)
        return self._write(lambda s, stamp: self._labels(s, ids, {ident_attr: unknown, GENDER: gender}, stamp, source), source=source)

    def rename_identity(self, identity_id: int, name: str | None) -> IdentityInfo:
        self._check_write([self._identity_attr()])

        def tx(s: Session) -> IdentityInfo:
            identity = s.get(Identity, int(identity_id))
            if identity is None:
                raise UserError(f"no identity with id {identity_id}")
            identity.name = name or None
            return IdentityInfo(identity.id, identity.video_id, identity.name, identity.gender, identity.exemplar_crop_id)

        return self.project.run_write(tx)

    def merge_identities(self, keep_id: int, other_id: int) -> MergeResult:
        """Two characters of one movie that are one person: every crop labelled ``other_id`` gets a new
        identity label ``keep_id`` (and KEEP's gender where it differs), as one undoable action."""
        ident_attr = self._identity_attr()
        self._check_write([ident_attr, GENDER])
        moved: list[tuple[int, int]] = []

        def fn(s: Session, stamp: float) -> list[LabelRecord]:
            records, n_moved, n_gender = merge_labels(s, self.taxonomy, keep_id, other_id,
                                                      annotator_id=self.annotator.id, stamp=stamp)  # fmt: skip
            moved[:] = [(n_moved, n_gender)]
            return records

        # not self._write: that also returns this queue's leases on the written crops, and the merged
        # crops were labelled already (in no identity queue); another queue's leases must stay
        stamp = self._stamp()
        records = self.project.run_write(lambda s: fn(s, stamp))
        self._push(Action("app", tuple(ActionLabel(r.crop_id, r.attribute, r.value, r.id) for r in records)))
        with self.project.session() as s:
            keep, other = get_identity(s, self.taxonomy, keep_id), get_identity(s, self.taxonomy, other_id)
        self._characters.pop(keep.video_id, None)
        return MergeResult(keep, other, moved[0][0], moved[0][1], self.annotator.name)

    # -- identity view reads -------------------------------------------------------------------
    def exemplars(self, crop_id: int, limit: int | None = None) -> list[Exemplar]:
        """The characters of the crop's movie, most similar exemplar first (cosine of float16 embeddings).

        Identities without an exemplar embedding (or a current crop without one) sort after those
        with one, then by crop count.
        """
        with self.project.session() as s:
            return self._exemplars(s, crop_id, limit)

    def identity_context(self, crop_id: int, *, exemplars: int | None = None, strip: int = 24) -> tuple[list[Exemplar], list[TrackCrop]]:
        """:meth:`exemplars` and :meth:`track_crops` (the whole track) of one crop in one read (what the identity view shows)."""
        with self.project.session() as s:
            return self._exemplars(s, crop_id, exemplars), self._track_crops(s, crop_id, strip, False)

    def _movie_characters(self, s: Session, video_id: int) -> tuple[float, list, dict[int, np.ndarray | None]]:
        """The movie's identity rows and exemplar embeddings, cached for CHARACTERS_TTL seconds."""
        cached = self._characters.get(video_id)
        if cached is None or time.monotonic() - cached[0] > CHARACTERS_TTL:
            rows = s.execute(
                select(Identity.id, Identity.name, Identity.gender, Identity.exemplar_crop_id, Crop.path, Crop.embedding)
                .outerjoin(Crop, Crop.id == Identity.exemplar_crop_id)
                .where(Identity.video_id == video_id)
                .order_by(Identity.id)
            ).all()
            cached = (time.monotonic(), rows, {r.id: _embedding(r.embedding) for r in rows})
            self._characters[video_id] = cached
        return cached

    def _exemplars(self, s: Session, crop_id: int, limit: int | None) -> list[Exemplar]:
        ident_attr = self._identity_attr()
        crop = s.execute(select(Crop.video_id, Crop.embedding).where(Crop.id == crop_id)).first()
        if crop is None:
            raise UserError(f"no crop with id {crop_id}")
        _, rows, embeddings = self._movie_characters(s, crop.video_id)
        if not rows:
            return []
        counts = dict(
            s.execute(
                select(CurrentLabel.value, func.count())
                .where(CurrentLabel.attribute == ident_attr, CurrentLabel.value.in_([str(r.id) for r in rows]))
                .group_by(CurrentLabel.value)
            ).all()
        )
        query = _embedding(crop.embedding)
        out = []
        for r in rows:
            emb = embeddings.get(r.id)
            sim = float(query @ emb) if query is not None and emb is not None and emb.shape == query.shape else None
            out.append(
                Exemplar(
                    r.id, r.name, r.gender, int(counts.get(str(r.id), 0)), r.exemplar_crop_id,
                    self._image_path(r.path) if r.path else None, sim,
                )
            )
        out.sort(key=lambda e: (e.similarity is None, -(e.similarity or 0.0), -e.crop_count, e.identity_id))
        return out[:limit] if limit else out

    def track_crops(self, crop_id: int, limit: int = 24, *, unlabelled_only: bool = False) -> list[TrackCrop]:
        """Other crops of the crop's track, the ``limit`` nearest frames, in frame order.

        Labelled crops are included (``TrackCrop.labelled``) unless ``unlabelled_only``.
        """
        with self.project.session() as s:
            return self._track_crops(s, crop_id, limit, unlabelled_only)

    def _identity_label(self, ident_attr: str, value: str, names: dict[int, str | None]) -> str:
        """What a person reads for a stored identity value: the character's name, ``ID n``, or the value's label."""
        if value.isdigit():
            ident = int(value)
            return names.get(ident) or f"ID {ident}"
        for v in self.taxonomy.attribute(ident_attr).values:  # two values (unknown, unsure)
            if v.name == value:
                return v.label
        return value

    def _track_crops(self, s: Session, crop_id: int, limit: int, unlabelled_only: bool) -> list[TrackCrop]:
        ident_attr = self._identity_attr()
        crop = s.execute(select(Crop.track_id, Crop.frame_index, Crop.video_id).where(Crop.id == crop_id)).first()
        if crop is None:
            raise UserError(f"no crop with id {crop_id}")
        cl = _CL
        query = (
            select(Crop.id, Crop.frame_index, Crop.path, cl.value)
            .outerjoin(cl, and_(cl.crop_id == Crop.id, cl.attribute == ident_attr))
            .where(Crop.track_id == crop.track_id, Crop.id != crop_id)
        )
        if unlabelled_only:
            query = query.where(cl.value.is_(None))
        # a track is short (one shot): sort its rows here rather than ask the store for abs() ordering
        rows = sorted(s.execute(query).all(), key=lambda r: (abs(r.frame_index - crop.frame_index), r.frame_index))
        rows = sorted(rows[:limit], key=lambda r: r.frame_index)
        names: dict[int, str | None] = {}
        if not self.second_opinion and any(r.value is not None and r.value.isdigit() for r in rows):
            # the movie's characters are cached for the exemplar grid: names cost no extra query per click
            names = {c.id: c.name for c in self._movie_characters(s, crop.video_id)[1]}
        out = []
        for r in rows:
            if r.value is None:
                out.append(TrackCrop(r.id, r.frame_index, self._image_path(r.path), None))
            elif self.second_opinion:  # labelled, but the earlier answer stays hidden (no anchoring)
                out.append(TrackCrop(r.id, r.frame_index, self._image_path(r.path), None, True, None))
            else:
                label = self._identity_label(ident_attr, r.value, names)
                out.append(TrackCrop(r.id, r.frame_index, self._image_path(r.path), r.value, True, label))
        return out

    def track_targets(self, crop_id: int, exclude: Iterable[int] = (), *, unlabelled_only: bool = True) -> list[int]:
        """The crop and every other crop of its track (unlabelled ones by default) minus ``exclude``."""
        ident_attr = self._identity_attr()
        skip = {int(c) for c in exclude}
        with self.project.session() as s:
            track_id = s.scalar(select(Crop.track_id).where(Crop.id == crop_id))
            if track_id is None:
                raise UserError(f"no crop with id {crop_id}")
            cl = _CL
            query = (
                select(Crop.id)
                .outerjoin(cl, and_(cl.crop_id == Crop.id, cl.attribute == ident_attr))
                .where(Crop.track_id == track_id)
                .order_by(Crop.frame_index)
            )
            if unlabelled_only:
                query = query.where(or_(cl.value.is_(None), Crop.id == crop_id))
            ids = list(s.scalars(query))
        return [c for c in ids if c not in skip]

    # -- undo / redo ---------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def _rebuild_stacks(self) -> None:
        """Replay this annotator's recent history: app/review/synthetic clicks push, undo pops, redo re-pushes."""
        with self.project.session() as s:
            rows = list(
                s.execute(
                    select(Label.id, Label.crop_id, Label.attribute, Label.value, Label.source, Label.created_at)
                    .where(Label.annotator_id == self.annotator.id)
                    .order_by(Label.id.desc())
                    .limit(HISTORY_WINDOW)
                )
            )
        rows.reverse()
        groups: list[tuple[str, list]] = []
        key = None
        for r in rows:
            k = (r.created_at, r.source)
            if k != key:
                groups.append((r.source, []))
                key = k
            groups[-1][1].append(ActionLabel(r.crop_id, r.attribute, r.value, r.id))
            self._last_stamp = max(self._last_stamp, r.created_at)
        done: list[Action] = []
        redo: list[tuple[Action, Action]] = []
        for source, labels in groups:
            action = Action(source, tuple(labels))
            if source == "undo":
                if done:
                    redo.append((done.pop(), action))
            elif source == "redo":
                if redo:
                    redo.pop()
                done.append(action)
            else:
                done.append(action)
                redo.clear()
        self._done, self._redo = done[-MAX_STACK:], redo[-MAX_STACK:]

    def undo(self) -> Action | None:
        """Revert this annotator's last click: each of its labels gets the value it replaced (or none).

        A label someone else has changed since is left alone. Returns the undo action (its
        ``crop_ids`` are the crops to show again) or None when there is nothing to undo.
        """
        if not self._done:
            return None
        original = self._done[-1]

        def fn(s: Session, stamp: float) -> list[LabelRecord]:
            out = []
            for lab in original.labels:
                current = s.get(CurrentLabel, (lab.crop_id, lab.attribute))
                if current is None or current.value != lab.value:
                    log.info("undo skips crop %d %s: changed since", lab.crop_id, lab.attribute)
                    continue
                previous = s.execute(
                    select(Label.value)
                    .where(Label.crop_id == lab.crop_id, Label.attribute == lab.attribute, Label.id < lab.label_id)
                    .order_by(Label.id.desc())
                    .limit(1)
                ).scalar_one_or_none()
                out.append(
                    add_label(s, self.taxonomy, lab.crop_id, lab.attribute, previous,
                              annotator_id=self.annotator.id, source="undo", created_at=stamp)
                )
            return out

        undo_action = self._write_history(fn, "undo")
        self._done.pop()
        self._redo.append((original, undo_action))
        self._requeue(original.crop_ids)
        return undo_action

    def redo(self) -> Action | None:
        """Re-apply the last undone click (where nothing changed since the undo)."""
        if not self._redo:
            return None
        original, undone = self._redo[-1]
        restored = {(lab.crop_id, lab.attribute): lab.value for lab in undone.labels}

        def fn(s: Session, stamp: float) -> list[LabelRecord]:
            out = []
            for lab in original.labels:
                key = (lab.crop_id, lab.attribute)
                if key not in restored:
                    continue
                current = s.get(CurrentLabel, key)
                if (current.value if current is not None else None) != restored[key]:
                    continue
                out.append(
                    add_label(s, self.taxonomy, lab.crop_id, lab.attribute, lab.value,
                              annotator_id=self.annotator.id, source="redo", created_at=stamp)
                )
            return out

        redo_action = self._write_history(fn, "redo")
        self._redo.pop()
        self._done.append(redo_action)
        return redo_action

    def _write_history(self, fn, source: str) -> Action:
        stamp = self._stamp()
        records = self.project.run_write(lambda s: fn(s, stamp))
        return Action(source, tuple(ActionLabel(r.crop_id, r.attribute, r.value, r.id) for r in records))

    def _requeue(self, crop_ids: Sequence[int]) -> None:
        """After an undo the crops are unlabelled again: lease them back to us, first in the queue."""
        attr = self.attribute

        def tx(s: Session) -> list[int]:
            unlabelled = list(
                s.scalars(
                    select(Crop.id)
                    .outerjoin(CurrentLabel, and_(CurrentLabel.crop_id == Crop.id, CurrentLabel.attribute == attr))
                    .where(Crop.id.in_(list(crop_ids)), CurrentLabel.value.is_(None))
                )
            )
            return self._insert_leases(s, unlabelled, time.time() + self.lease_seconds)

        for crop_id in reversed(self.project.run_write(tx)):
            if crop_id in self._queue:
                self._queue.remove(crop_id)
            self._queue.appendleft(crop_id)

    # -- progress ------------------------------------------------------------------------------
    def progress(self, attribute: str | None = None) -> Progress:
        """Done / remaining crops of an attribute and this annotator's labelling rate (last hour)."""
        attribute = attribute or self.attribute
        now = time.time()
        with self.project.session() as s:
            total = s.scalar(select(func.count()).select_from(Crop)) or 0
            done = s.scalar(
                select(func.count()).select_from(CurrentLabel).where(
                    CurrentLabel.attribute == attribute, CurrentLabel.value.is_not(None)
                )
            ) or 0
            n, first = s.execute(
                select(func.count(), func.min(Label.created_at)).where(
                    Label.annotator_id == self.annotator.id,
                    Label.attribute == attribute,
                    Label.created_at >= now - 3600.0,
                    Label.source != "undo",
                )
            ).one()
        n = int(n or 0)
        elapsed = max(now - first, 60.0) if n else 3600.0
        return Progress(attribute, int(done), int(total - done), int(total), n, n * 3600.0 / min(elapsed, 3600.0))

    # -- review --------------------------------------------------------------------------------
    def review_labels(
        self,
        attribute: str,
        *,
        value: str | None = None,
        annotator: str | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[ReviewRow]:
        """Current labels of an attribute, optionally of one value (for multi-label: containing it) and annotator."""
        self._check_review()
        attr = self.taxonomy.attribute(attribute)
        query = (
            select(CurrentLabel.crop_id, CurrentLabel.value, CurrentLabel.label_id, Crop.video_id, Crop.path, Annotator.name)
            .join(Crop, Crop.id == CurrentLabel.crop_id)
            .outerjoin(Annotator, Annotator.id == CurrentLabel.annotator_id)
            .where(CurrentLabel.attribute == attribute, CurrentLabel.value.is_not(None))
            .order_by(CurrentLabel.crop_id)
            .limit(limit)
            .offset(offset)
        )
        if value is not None:
            if attr.multilabel:
                sep = "|"
                query = query.where(
                    or_(
                        CurrentLabel.value == value,
                        CurrentLabel.value.like(f"{value}{sep}%"),
                        CurrentLabel.value.like(f"%{sep}{value}"),
                        CurrentLabel.value.like(f"%{sep}{value}{sep}%"),
                    )
                )
            else:
                query = query.where(CurrentLabel.value == str(value))
        if annotator is not None:
            query = query.where(Annotator.name == annotator)
        with self.project.session() as s:
            rows = s.execute(query).all()
        return [
            ReviewRow(r.crop_id, r.video_id, attribute, self._decode(attribute, r.value), r.name, r.label_id, self._image_path(r.path))
            for r in rows
        ]

    def correct_label(self, crop_id: int, attribute: str, value) -> Action:
        """A reviewer's correction: a new label with source='review' (the history keeps the old one)."""
        self._check_review()
        attr = self.taxonomy.attribute(attribute)
        if attr.kind == "identity" and str(value).isdigit():
            ident_attr = attribute

            def fn(s: Session, stamp: float) -> list[LabelRecord]:
                return self._labels(s, [int(crop_id)], _identity_values(s, ident_attr, value), stamp, "review")

            return self._write(fn, source="review")
        self.taxonomy.encode(attribute, value)
        return self._write(lambda s, stamp: self._labels(s, [int(crop_id)], {attribute: value}, stamp, "review"), source="review")

    def annotator_labels(self, attribute: str, annotator: str) -> dict[int, str]:
        """``{crop_id: stored value}``: each crop's latest label by this annotator (withdrawn by undo: left out)."""
        who = get_annotator(self.project, annotator)
        latest = (
            select(func.max(Label.id).label("id"))
            .where(Label.attribute == attribute, Label.annotator_id == who.id)
            .group_by(Label.crop_id)
            .subquery()
        )
        with self.project.session() as s:
            rows = s.execute(
                select(Label.crop_id, Label.value, Label.source).join(latest, latest.c.id == Label.id)
            ).all()
        return {r.crop_id: r.value for r in rows if r.source != "undo" and r.value is not None}

    def kappa(self, attribute: str, annotator_a: str, annotator_b: str) -> KappaResult:
        """Cohen's kappa of two annotators over the crops both labelled (multi-label: exact set agreement)."""
        self.taxonomy.attribute(attribute)
        a = self.annotator_labels(attribute, annotator_a)
        b = self.annotator_labels(attribute, annotator_b)
        common = sorted(set(a) & set(b))
        value = cohen_kappa([a[c] for c in common], [b[c] for c in common]) if common else float("nan")
        return KappaResult(attribute, annotator_a, annotator_b, len(common), value)

    def agreement(self, attribute: str, min_overlap: int = 2) -> list[KappaResult]:
        """Kappa for every pair of annotators who labelled at least ``min_overlap`` same crops."""
        self._check_review()
        with self.project.session() as s:
            names = list(
                s.scalars(
                    select(Annotator.name)
                    .where(Annotator.id.in_(select(Label.annotator_id).where(Label.attribute == attribute).distinct()))
                    .order_by(Annotator.name)
                )
            )
        out = []
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                res = self.kappa(attribute, a, b)
                if res.n >= min_overlap:
                    out.append(res)
        return out
