"""The annotation service's review: reviewers read and correct current labels, and measure how far
annotators agree (Cohen's kappa over the crops two annotators both labelled, or over their clicks only).

Every label carries its provenance (clicked, accepted, propagated, inherited, imported, merged): review
filters by it and shows it in a crop's history; labels from before provenance was recorded were clicks.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from portrait_builder.annotation.annotators import get_annotator
from portrait_builder.annotation.characters import identity_values
from portrait_builder.annotation.history import HistoryMixin
from portrait_builder.annotation.kappa import cohen_kappa
from portrait_builder.annotation.types import Action, HistoryRow, KappaResult, ReviewRow
from portrait_builder.errors import UserError
from portrait_builder.store.labels import PROVENANCES, LabelRecord
from portrait_builder.store.models import Annotator, Crop, CurrentLabel, Label

CLICKED = ("clicked", None)  # None: labels from before provenance was recorded, which were all clicks


def _provenances(provenance: str | Iterable[str] | None) -> list[str] | None:
    if provenance is None:
        return None
    wanted = [provenance] if isinstance(provenance, str) else list(provenance)
    bad = [p for p in wanted if p not in PROVENANCES]
    if bad:
        raise UserError(f"unknown provenance {bad[0]!r}; valid: {', '.join(PROVENANCES)}")
    return wanted


def _provenance_filter(column, wanted: list[str]):
    # older labels have no provenance and were clicks
    return or_(column.in_(wanted), column.is_(None)) if "clicked" in wanted else column.in_(wanted)


class ReviewMixin(HistoryMixin):
    def review_labels(
        self,
        attribute: str,
        *,
        value: str | None = None,
        annotator: str | None = None,
        provenance: str | Iterable[str] | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[ReviewRow]:
        """Current labels of an attribute, optionally of one value (for multi-label: containing it), one
        annotator and some provenances (e.g. ``"propagated"`` to check what ran along tracks)."""
        self._check_review()
        attr = self.taxonomy.attribute(attribute)
        wanted = _provenances(provenance)
        query = (
            select(CurrentLabel.crop_id, CurrentLabel.value, CurrentLabel.label_id, Crop.video_id, Crop.path, Annotator.name,
                   Label.provenance)
            .join(Crop, Crop.id == CurrentLabel.crop_id)
            .join(Label, Label.id == CurrentLabel.label_id)
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
        if wanted is not None:
            query = query.where(_provenance_filter(Label.provenance, wanted))
        with self.project.session() as s:
            rows = s.execute(query).all()
        return [
            ReviewRow(r.crop_id, r.video_id, attribute, self._decode(attribute, r.value), r.name, r.label_id,
                      self._image_path(r.path), r.provenance or "clicked")
            for r in rows
        ]

    def label_history(self, crop_id: int, attribute: str | None = None) -> list[HistoryRow]:
        """Every label of a crop (of one attribute when given), oldest first, with who and how."""
        self._check_review()
        query = (
            select(Label.id, Label.attribute, Label.value, Label.source, Label.provenance, Label.created_at,
                   Annotator.name)
            .outerjoin(Annotator, Annotator.id == Label.annotator_id)
            .where(Label.crop_id == int(crop_id))
            .order_by(Label.id)
        )
        if attribute is not None:
            self.taxonomy.attribute(attribute)
            query = query.where(Label.attribute == attribute)
        with self.project.session() as s:
            rows = s.execute(query).all()
        return [HistoryRow(r.id, r.attribute, self._decode(r.attribute, r.value), r.name, r.source,
                           r.provenance or "clicked", r.created_at) for r in rows]  # fmt: skip

    def correct_label(self, crop_id: int, attribute: str, value) -> Action:
        """A reviewer's correction: a new label with source='review' (the history keeps the old one)."""
        self._check_review()
        attr = self.taxonomy.attribute(attribute)
        if attr.kind == "identity" and str(value).isdigit():
            ident_attr = attribute

            def fn(s: Session, stamp: float) -> list[LabelRecord]:
                return self._labels(s, [int(crop_id)], identity_values(s, ident_attr, value), stamp, "review")

            return self._write(fn, source="review")
        self.taxonomy.encode(attribute, value)
        return self._write(lambda s, stamp: self._labels(s, [int(crop_id)], {attribute: value}, stamp, "review"), source="review")

    def annotator_labels(self, attribute: str, annotator: str, *, clicked_only: bool = False) -> dict[int, str]:
        """``{crop_id: stored value}``: each crop's latest label by this annotator (withdrawn by undo: left out).

        ``clicked_only``: only crops whose latest label by this annotator was a click on that crop (not a
        value propagated along a track, an accepted prediction or an inherited one)."""
        who = get_annotator(self.project, annotator)
        latest = (
            select(func.max(Label.id).label("id"))
            .where(Label.attribute == attribute, Label.annotator_id == who.id)
            .group_by(Label.crop_id)
            .subquery()
        )
        with self.project.session() as s:
            rows = s.execute(
                select(Label.crop_id, Label.value, Label.source, Label.provenance).join(latest, latest.c.id == Label.id)
            ).all()
        return {r.crop_id: r.value for r in rows if r.source != "undo" and r.value is not None
                and (not clicked_only or r.provenance in CLICKED)}  # fmt: skip

    def kappa(self, attribute: str, annotator_a: str, annotator_b: str, *, clicked_only: bool = False) -> KappaResult:
        """Cohen's kappa of two annotators over the crops both labelled (multi-label: exact set agreement);
        ``clicked_only``: over the crops both labelled by a click on that crop (see :meth:`annotator_labels`)."""
        self.taxonomy.attribute(attribute)
        a = self.annotator_labels(attribute, annotator_a, clicked_only=clicked_only)
        b = self.annotator_labels(attribute, annotator_b, clicked_only=clicked_only)
        common = sorted(set(a) & set(b))
        value = cohen_kappa([a[c] for c in common], [b[c] for c in common]) if common else float("nan")
        return KappaResult(attribute, annotator_a, annotator_b, len(common), value)

    def agreement(self, attribute: str, min_overlap: int = 2, *, clicked_only: bool = False) -> list[KappaResult]:
        """Kappa for every pair of annotators who labelled at least ``min_overlap`` same crops (``clicked_only``:
        by clicks)."""
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
                res = self.kappa(attribute, a, b, clicked_only=clicked_only)
                if res.n >= min_overlap:
                    out.append(res)
        return out
