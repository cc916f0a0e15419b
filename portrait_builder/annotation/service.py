"""The Qt-free annotation service: one annotator on one attribute queue of a project.

:class:`AnnotationService` is the one entry point the app, the command line and the demo use. Its parts
live beside it, one job each: :mod:`.queue` (leases and the work queue), :mod:`.history` (label writes,
undo and redo), :mod:`.characters` (identity labels, exemplars, the track strip), :mod:`.review`
(corrections and agreement), :mod:`.tracks` (dynamic attributes along tracks, change points),
:mod:`.predictions` (accepting pre-labels); annotators are in :mod:`.annotators`, the plain data out in :mod:`.types`.
Everything it returns is a plain frozen dataclass; sessions and ORM rows never leave the package.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from portrait_builder.annotation.character_attributes import CharacterAttributesMixin
from portrait_builder.annotation.characters import CharactersMixin
from portrait_builder.annotation.identities import MergeResult
from portrait_builder.annotation.predictions import PredictionsMixin
from portrait_builder.annotation.proposals import ProposalsMixin
from portrait_builder.annotation.queue import CLAIM_BATCH, LEASE_SECONDS, QueueMixin
from portrait_builder.annotation.review import ReviewMixin
from portrait_builder.annotation.team import resolve_annotator
from portrait_builder.annotation.tracks import TracksMixin
from portrait_builder.annotation.types import REVIEW_ROLES, Action, AnnotationPermissionError
from portrait_builder.errors import UserError
from portrait_builder.store.project import Project


class AnnotationService(QueueMixin, TracksMixin, PredictionsMixin, ProposalsMixin, CharacterAttributesMixin,
                        CharactersMixin, ReviewMixin):
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
        self.taxonomy = project.taxonomy
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
        self._queue = deque()
        self._paths = {}
        self._cursor = 0
        self._last_renew = 0.0
        self._last_stamp = 0.0
        # Characters change rarely; re-read after our own new_identity and every CHARACTERS_TTL
        # seconds for other annotators' ones.
        self._characters = {}
        self._done = []
        self._redo = []
        self._rebuild_stacks()

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

    def close(self, *, release_leases: bool = True) -> None:
        """Release the leases (the app calls it on close).

        ``release_leases=False`` keeps the leases (a one-off command acting as an annotator whose app
        may be open on the same queue). The store's connection pool stays open for the project."""
        if release_leases:
            self.release()

    def __enter__(self) -> AnnotationService:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
