"""The annotation service's work queue: lease claims, the next crop to label, skip, prefetch, progress.

Leases live in the store (:mod:`portrait_builder.store.leases`, where the dialect-specific SQL is);
this part keeps the annotator's local queue of claimed crops and renews the leases while they work.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import and_, func, select

from portrait_builder.annotation.base import ServiceBase
from portrait_builder.annotation.types import GENDER, CropItem, Progress
from portrait_builder.errors import UserError
from portrait_builder.store.leases import claim_leases, held_leases, release_leases, renew_leases
from portrait_builder.store.models import Crop, CurrentLabel, Label, Lease

LEASE_SECONDS = 15 * 60.0  # long enough for a coffee break; renewed while the annotator works
CLAIM_BATCH = 16  # small batches: a crashed client strands at most this many crops until expiry


class QueueMixin(ServiceBase):
    def claim(self, n: int | None = None) -> list[int]:
        """Lease up to ``n`` unlabelled, unleased crops of this attribute in one atomic transaction
        (see :func:`portrait_builder.store.leases.claim_leases`)."""
        n = n or self.batch

        def tx(s) -> list[tuple[int, str]]:
            now = time.time()
            return claim_leases(s, self.attribute, self.annotator.id, n, now=now, expires=now + self.lease_seconds,
                                after=self._cursor, second_opinion=self.second_opinion)  # fmt: skip

        claimed = self.project.run_write(tx)
        taken = [c for c, _ in claimed]
        self._paths.update(claimed)
        if taken:
            self._cursor = max(self._cursor, max(taken))
            self._last_renew = time.time()
        self._queue.extend(c for c in taken if c not in self._queue)
        return taken

    def renew(self) -> int:
        """Extend this annotator's leases on the queue; returns how many were renewed."""
        expires = time.time() + self.lease_seconds
        count = self.project.run_write(lambda s: renew_leases(s, self.attribute, self.annotator.id, expires))
        self._last_renew = time.time()
        return count

    def release(self) -> None:
        """Give back every lease of this annotator on this queue (the app calls it on close)."""
        self.project.run_write(lambda s: release_leases(s, self.attribute, self.annotator.id))
        self._queue.clear()

    def held_leases(self) -> list[int]:
        with self.project.session() as s:
            return held_leases(s, self.attribute, self.annotator.id)

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
