"""A project with real crops (MOT17 ground-truth persons when ../shared/data is present, else rendered)
and one annotator per role, on SQLite and PostgreSQL (via the shared `project` fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest

MOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "mot" / "MOT17-mini" / "train"


def mot_dirs() -> list[Path]:
    return [MOT / "MOT17-02-FRCNN", MOT / "MOT17-05-FRCNN"]


@pytest.fixture
def annotated(project):
    """(project, crop ids) with annotators ann_id (identity), ann_age, ann_age2 (age), ann_expr (expression), rev, boss."""
    from portrait_builder.annotation import add_annotator
    from portrait_builder.testing.annotation_sample import populate_sample

    crop_ids = populate_sample(project, mot_dirs(), max_tracks=5)
    add_annotator(project, "ann_id", "annotator", "identity")
    add_annotator(project, "ann_age", "annotator", "age")
    add_annotator(project, "ann_age2", "annotator", "age")
    add_annotator(project, "ann_expr", "annotator", "expression")
    add_annotator(project, "rev", "reviewer")
    add_annotator(project, "boss", "maintainer", "identity")
    return project, crop_ids
