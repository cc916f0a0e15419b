"""``store_counts`` (revision 0005): the crop count and the labelled crops per attribute that the
database keeps with triggers equal what counting the tables gives, after every kind of write, on
SQLite (row triggers) and PostgreSQL (statement-level triggers with transition tables).

The reference is the GROUP BY that ``Project.status()`` used to run on every call.
"""

from __future__ import annotations

import csv

from sqlalchemy import delete, func, inspect, select, text

from portrait_builder.annotation import AnnotationService, add_annotator
from portrait_builder.release import import_labels
from portrait_builder.store import Crop, CurrentLabel, Project, Video, migrate
from portrait_builder.store.labels import add_label, add_labels
from portrait_builder.testing.annotation_sample import populate_sample


def counted(project: Project) -> tuple[int, dict[str, int]]:
    """Crops and labelled crops per attribute, counted from the tables themselves."""
    with project.session() as s:
        crops = s.scalar(select(func.count()).select_from(Crop))
        labelled = dict(s.execute(select(CurrentLabel.attribute, func.count())
                                  .where(CurrentLabel.value.is_not(None)).group_by(CurrentLabel.attribute)).all())
    return crops, labelled


def kept(project: Project) -> tuple[int, dict[str, int]]:
    """The same, as status reports it from the counters."""
    status = project.status()
    return status["crops"], {a: v["labelled"] for a, v in status["attributes"].items() if v["labelled"]}


def same(project: Project) -> tuple[int, dict[str, int]]:
    ours = kept(project)
    assert ours == counted(project)
    return ours


def test_counts_follow_every_kind_of_write(project, tmp_path):
    ids = populate_sample(project, rendered_videos=2)  # 2 movies x 6 tracks x 5 crops
    assert same(project) == (60, {})
    tax = project.taxonomy
    add_annotator(project, "ann_age", "annotator", "age")
    add_annotator(project, "ann_id", "annotator", "identity")
    boss = add_annotator(project, "boss", "maintainer", "identity")

    # clicks: a label, a relabel of the same crop (no new labelled crop), a cleared label
    age = AnnotationService(project, "ann_age")
    age.set_label(ids[0], "age", "young_adult")
    age.set_label(ids[0], "age", "elderly")
    age.set_label(ids[1], "age", "child")
    assert same(project) == (60, {"age": 2})
    project.run_write(lambda s: add_label(s, tax, ids[1], "age", None, annotator_id=boss.id, source="review"))
    assert same(project) == (60, {"age": 1})

    # one bulk write (one INSERT, one current-labels move) over crops with and without a label
    project.run_write(lambda s: add_labels(s, tax, ids[0:10], "physique", "thin", annotator_id=boss.id,
                                           stamp=1.0, source="app", provenance="clicked"))
    project.run_write(lambda s: add_labels(s, tax, ids[5:15], "physique", "medium", annotator_id=boss.id,
                                           stamp=2.0, source="app", provenance="clicked"))
    assert same(project) == (60, {"age": 1, "physique": 15})

    # a click, its undo and its redo
    age.set_label(ids[2], "age", "young_adult")
    assert same(project)[1]["age"] == 2
    age.undo()
    assert same(project)[1]["age"] == 1
    age.redo()
    assert same(project)[1]["age"] == 2

    # characters: two of one movie, each with its exemplar's track, then merged into one
    ident = AnnotationService(project, "ann_id")
    with project.session() as s:
        movie = s.scalar(select(Crop.video_id).where(Crop.id == ids[20]))
        crops_of_movie = list(s.scalars(select(Crop.id).where(Crop.video_id == movie).order_by(Crop.id)))
    a = ident.new_identity(crops_of_movie[0], "male", "A", also=crops_of_movie[1:5])
    b = ident.new_identity(crops_of_movie[5], "male", "B", also=crops_of_movie[6:8])
    assert same(project)[1] == {"age": 2, "physique": 15, "identity": 8, "gender": 8}
    ident.merge_identities(a.id, b.id)
    assert same(project)[1] == {"age": 2, "physique": 15, "identity": 8, "gender": 8}
    ident.undo()  # the merge
    ident.undo()  # character B and its three crops
    assert same(project)[1] == {"age": 2, "physique": 15, "identity": 5, "gender": 5}

    # a label import (one transaction, many rows, several attributes)
    path = tmp_path / "labels.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["crop_id", "attribute", "value", "annotator"])
        for c in ids[30:40]:
            w.writerow([c, "height", "tall", "boss"])
        for c in ids[0:4]:  # already labelled: relabels
            w.writerow([c, "physique", "heavy", "boss"])
    import_labels(project, path)
    assert same(project)[1] == {"age": 2, "physique": 15, "identity": 5, "gender": 5, "height": 10}

    # deleting a crop and a whole movie: the database cascades to current_labels
    project.run_write(lambda s: s.execute(delete(Crop).where(Crop.id == ids[0])))
    assert same(project) == (59, {"age": 1, "physique": 14, "identity": 4, "gender": 4, "height": 10})
    with project.session() as s:
        first_movie = s.scalar(select(Crop.video_id).where(Crop.id == ids[1]))
    project.run_write(lambda s: s.execute(delete(Video).where(Video.id == first_movie)))
    assert same(project) == (30, {"height": 10})


def _triggers(engine) -> int:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            sql = "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'portrait_count_%%'"
        else:
            sql = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'portrait_count_%'"
        return conn.exec_driver_sql(sql).scalar_one()


def test_upgrade_counts_an_existing_store_and_downgrade_removes_the_counters(tmp_path, db_url):
    project = Project.init(tmp_path / "p", db_url=db_url)
    migrate.downgrade(project.engine, "0004")
    assert "store_counts" not in inspect(project.engine).get_table_names() and _triggers(project.engine) == 0
    # a store in use at revision 0004: crops, labels, a cleared label
    ids = populate_sample(project, rendered_videos=1)
    boss = add_annotator(project, "boss", "maintainer")
    tax = project.taxonomy

    def write(s):
        for c in ids[:7]:
            add_label(s, tax, c, "age", "young_adult", annotator_id=boss.id)
        for c in ids[:3]:
            add_label(s, tax, c, "height", "short", annotator_id=boss.id)
        add_label(s, tax, ids[0], "height", None, annotator_id=boss.id)

    project.run_write(write)
    migrate.upgrade(project.engine)
    assert same(project) == (30, {"age": 7, "height": 2})
    # and the triggers keep them from there on
    project.run_write(lambda s: add_label(s, tax, ids[0], "height", "tall", annotator_id=boss.id))
    assert same(project) == (30, {"age": 7, "height": 3})

    migrate.downgrade(project.engine, "0004")
    assert "store_counts" not in inspect(project.engine).get_table_names() and _triggers(project.engine) == 0
    project.run_write(lambda s: s.execute(delete(Crop).where(Crop.id == ids[-1])))  # writes work without them
    migrate.upgrade(project.engine)
    assert same(project) == (29, {"age": 7, "height": 3})
    assert _triggers(project.engine) > 0
    project.close()


def test_truncate_zeroes_the_counters_on_postgresql(project):
    if project.is_sqlite:  # SQLite has no TRUNCATE
        return
    populate_sample(project, rendered_videos=1)
    assert same(project) == (30, {})
    with project.engine.begin() as conn:
        conn.execute(text("TRUNCATE crops CASCADE"))
    assert same(project) == (0, {})
