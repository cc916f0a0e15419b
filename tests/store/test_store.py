"""The project store on SQLite and (when a server is configured) PostgreSQL."""

import pytest
from sqlalchemy import inspect, select, text

from portrait_builder.errors import UserError
from portrait_builder.store import (
    Annotator,
    Crop,
    CurrentLabel,
    Identity,
    Label,
    Project,
    Track,
    Video,
    add_label,
    current_labels,
    label_history,
    migrate,
)


def _video_track_crop(session, n_crops=2):
    video = Video(path="/m/movie.mp4", fingerprint="f" * 64, title="movie", fps=25.0, frame_count=100, width=640, height=360)
    session.add(video)
    session.flush()
    track = Track(video_id=video.id, tracker_id=1, first_frame=0, last_frame=10)
    session.add(track)
    session.flush()
    crops = []
    for i in range(n_crops):
        crop = Crop(video_id=video.id, track_id=track.id, frame_index=i * 5, timestamp=i * 0.2,
                    x1=10.5, y1=20.0, x2=60.25, y2=120.0, score=0.9, blur=12.5, path=f"v1/t1/{i:06d}.jpg",
                    phash=-(2**63), embedding=b"\x00\x3c" * 4)
        session.add(crop)
        crops.append(crop)
    session.flush()
    return video, track, crops


def test_round_trip(project):
    with project.write() as s:
        video, track, crops = _video_track_crop(s)
        ann = Annotator(name="ada", role="annotator", attribute="age")
        s.add(ann)
        s.flush()
        ident = Identity(video_id=video.id, name="Rick", gender="male", exemplar_crop_id=crops[0].id, created_by=ann.id)
        s.add(ident)
        s.flush()
        add_label(s, project.taxonomy, crops[0].id, "age", "elderly", annotator_id=ann.id)
        add_label(s, project.taxonomy, crops[0].id, "expression", ["surprise", "fear"], annotator_id=ann.id)
        add_label(s, project.taxonomy, crops[1].id, "identity", ident.id, annotator_id=ann.id)
        crop_ids = [c.id for c in crops]
    # a fresh open sees everything, with exact values
    reopened = Project.open(project.root)
    with reopened.session() as s:
        crop = s.scalars(select(Crop).where(Crop.id == crop_ids[0])).one()
        assert (crop.x1, crop.y1, crop.x2, crop.y2) == (10.5, 20.0, 60.25, 120.0)
        assert crop.phash == -(2**63)  # the full signed 64-bit range survives
        assert crop.embedding == b"\x00\x3c" * 4
        assert s.scalars(select(Identity)).one().name == "Rick"
        labels = current_labels(s)
    assert labels[crop_ids[0]] == {"age": "elderly", "expression": "fear|surprise"}
    assert labels[crop_ids[1]] == {"identity": str(ident.id)}
    status = reopened.status()
    assert (status["videos"], status["tracks"], status["crops"], status["identities"]) == (1, 1, 2, 1)
    assert status["attributes"]["age"] == {"labelled": 1, "unlabelled": 1}
    assert status["attributes"]["gender"] == {"labelled": 0, "unlabelled": 2}
    reopened.close()


def test_labels_are_append_only_history(project):
    with project.write() as s:
        _, _, crops = _video_track_crop(s, 1)
        cid = crops[0].id
        add_label(s, project.taxonomy, cid, "height", "tall")
        add_label(s, project.taxonomy, cid, "height", "short")
        add_label(s, project.taxonomy, cid, "height", None, source="undo")
    with project.session() as s:
        history = label_history(s, cid, "height")
        assert [h.value for h in history] == ["tall", "short", None]
        assert current_labels(s) == {}
        assert s.get(CurrentLabel, (cid, "height")).label_id == history[-1].id


def test_invalid_values_rejected_and_nothing_written(project):
    with project.write() as s:
        video, _, crops = _video_track_crop(s, 1)
        cid, vid = crops[0].id, video.id
    for attribute, value, message in [
        ("gender", "robot", "invalid value 'robot' for gender"),
        ("mood", "ok", "unknown attribute 'mood'"),
        ("identity", 999, "no identity with id 999"),
    ]:
        with pytest.raises(UserError, match=message), project.write() as s:
            add_label(s, project.taxonomy, cid, attribute, value)
    with pytest.raises(UserError, match="no crop with id 12345"), project.write() as s:
        add_label(s, project.taxonomy, 12345, "age", "child")
    # an identity of another video is refused
    with project.write() as s:
        other = Video(path="/m/b.mp4", fingerprint="e" * 64, title="b")
        s.add(other)
        s.flush()
        stranger = Identity(video_id=other.id, gender="female")
        s.add(stranger)
        s.flush()
        stranger_id = stranger.id
    with pytest.raises(UserError, match="belongs to another video"), project.write() as s:
        add_label(s, project.taxonomy, cid, "identity", stranger_id)
    with project.session() as s:
        assert s.scalar(select(Label.id).limit(1)) is None
    assert vid


def test_unique_crop_per_video_frame_track(project):
    from sqlalchemy.exc import IntegrityError

    with project.write() as s:
        video, track, crops = _video_track_crop(s, 1)
        ids = (video.id, track.id, crops[0].frame_index)
    with pytest.raises(IntegrityError), project.write() as s:
        s.add(Crop(video_id=ids[0], track_id=ids[1], frame_index=ids[2], x1=0, y1=0, x2=1, y2=2, path="other.jpg"))
    with project.session() as s:
        assert len(s.scalars(select(Crop)).all()) == 1


def test_migration_from_empty_to_head_and_back(tmp_path, db_url):
    from portrait_builder.store.engine import make_engine
    from portrait_builder.store.models import Base

    url = db_url or f"sqlite:///{tmp_path / 'empty.sqlite'}"
    engine = make_engine(url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    # the migrated schema matches the models (no drift between Alembic and SQLAlchemy)
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    migrate.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_sqlite_runs_in_wal_with_busy_timeout_and_foreign_keys(tmp_path):
    project = Project.init(tmp_path / "p")
    with project.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):  # foreign keys are enforced
        with project.write() as s:
            s.add(Track(video_id=424242, tracker_id=1, first_frame=0, last_frame=1))
            s.flush()


def test_open_refuses_an_outdated_store(tmp_path):
    project = Project.init(tmp_path / "p")
    migrate.downgrade(project.engine, "base")
    with pytest.raises(UserError, match="run `portrait upgrade"):
        Project.open(tmp_path / "p")
    before, after = Project.open(tmp_path / "p", require_current=False).upgrade()
    assert (before, after) == (None, migrate.head_revision())
    Project.open(tmp_path / "p")  # current again


def test_postgresql_url_is_accepted():
    from portrait_builder.store.engine import normalise_url

    assert normalise_url("postgresql://u:p@db.example:5432/portrait").startswith("postgresql+psycopg://u:p@db.example:5432/portrait")
    with pytest.raises(UserError, match="unsupported database"):
        normalise_url("mysql://x@y/z")
    with pytest.raises(UserError, match="not a database URL"):
        normalise_url("::nonsense::")


def test_head_revision_without_alembic_matches_alembic():
    """migrate.head_revision reads the scripts' revision lines (no Alembic import when opening a store);
    it must name the head Alembic itself finds."""
    from alembic.script import ScriptDirectory

    assert migrate.head_revision() == ScriptDirectory.from_config(migrate._config()).get_current_head()
