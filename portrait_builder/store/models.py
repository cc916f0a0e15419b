"""SQLAlchemy 2 models of the project store (docs/architecture.md, "The data model").

Boxes are absolute-pixel xyxy in the source frame. Labels are append-only; ``current_labels`` holds
the newest label of each (crop, attribute) so queues, status and releases never scan the history.
Both are written in one transaction by :mod:`portrait_builder.store.labels`.
"""

from __future__ import annotations

import time

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints keep Alembic migrations reproducible on SQLite and PostgreSQL alike.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

VIDEO_STATUSES = ("pending", "running", "partial", "done", "failed")
ROLES = ("annotator", "reviewer", "maintainer")


def now() -> float:
    return time.time()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Video(Base):
    __tablename__ = "videos"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(Text)
    fps: Mapped[float | None] = mapped_column(Float)
    frame_count: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # Index of the last source frame whose crops and rows are committed; -1 before any.
    last_committed_frame: Mapped[int] = mapped_column(Integer, default=-1)
    detector: Mapped[str | None] = mapped_column(String(64))
    weights_fingerprint: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict | None] = mapped_column(JSON)
    report: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Track(Base):
    __tablename__ = "tracks"
    __table_args__ = (UniqueConstraint("video_id", "tracker_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    tracker_id: Mapped[int] = mapped_column(Integer)
    first_frame: Mapped[int] = mapped_column(Integer)
    last_frame: Mapped[int] = mapped_column(Integer)
    shot_index: Mapped[int] = mapped_column(Integer, default=0)
    # Revision 0004: the candidate character (cluster of tracks) this track is in, if clustered.
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("candidates.id", ondelete="SET NULL"), index=True)


class Crop(Base):
    __tablename__ = "crops"
    __table_args__ = (UniqueConstraint("video_id", "frame_index", "track_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    frame_index: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[float | None] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
    blur: Mapped[float | None] = mapped_column(Float)
    path: Mapped[str] = mapped_column(Text, unique=True)  # relative to the project's crop root
    # 64-bit pHash stored as a signed 64-bit integer (two's complement of the unsigned hash).
    phash: Mapped[int | None] = mapped_column(BigInteger)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # float16, little-endian
    # Near-duplicate group (connected component of pHashes within the project's threshold).
    phash_group: Mapped[int | None] = mapped_column(Integer, index=True)
    # Film fields (revision 0002). shot_index: the shot of the video the crop lies in (0-based, as
    # tracks.shot_index). face_*: the face box in source-frame pixels (xyxy) when a face is visible;
    # face_visible is None for crops ingested before faces were detected. face_embedding: float16 bytes.
    shot_index: Mapped[int | None] = mapped_column(Integer)
    face_visible: Mapped[bool | None] = mapped_column(Boolean)
    face_x1: Mapped[float | None] = mapped_column(Float)
    face_y1: Mapped[float | None] = mapped_column(Float)
    face_x2: Mapped[float | None] = mapped_column(Float)
    face_y2: Mapped[float | None] = mapped_column(Float)
    face_embedding: Mapped[bytes | None] = mapped_column(LargeBinary)


class Identity(Base):
    __tablename__ = "identities"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(Text)
    gender: Mapped[str | None] = mapped_column(String(32))
    exemplar_crop_id: Mapped[int | None] = mapped_column(
        ForeignKey("crops.id", ondelete="SET NULL")
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("annotators.id", ondelete="SET NULL"))
    created_at: Mapped[float] = mapped_column(Float, default=now)
    # Revision 0004: static attributes set once on the character ({"age": "adult", ...}); crops
    # assigned to it later inherit them.
    attributes: Mapped[dict | None] = mapped_column(JSON)


class Candidate(Base):
    """A cluster of one movie's tracks that probably show one character (revision 0004).

    ``identity_id`` is set when a person confirms which character the cluster is.
    """

    __tablename__ = "candidates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    identity_id: Mapped[int | None] = mapped_column(ForeignKey("identities.id", ondelete="SET NULL"))
    confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("annotators.id", ondelete="SET NULL"))
    confirmed_at: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Prediction(Base):
    """A baseline's guess for one crop and attribute (revision 0004). Never a label by itself."""

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("crop_id", "attribute"),
        # confidence and crop_id too: the grid view pages one value's crops by (confidence, crop id), read
        # in index order instead of sorting every crop predicted that value (250,000 crops: 680 ms -> ms)
        Index("ix_predictions_attribute_value", "attribute", "value", "confidence", "crop_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    crop_id: Mapped[int] = mapped_column(ForeignKey("crops.id", ondelete="CASCADE"))
    attribute: Mapped[str] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    model: Mapped[str] = mapped_column(String(64))  # sha256 of the checkpoint that predicted it
    created_at: Mapped[float] = mapped_column(Float, default=now)


class ChangePoint(Base):
    """An annotator's mark that a dynamic attribute changes at ``frame_index`` inside a track (revision 0004)."""

    __tablename__ = "change_points"
    __table_args__ = (UniqueConstraint("track_id", "attribute", "frame_index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"))
    attribute: Mapped[str] = mapped_column(String(64))
    frame_index: Mapped[int] = mapped_column(Integer)
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("annotators.id", ondelete="SET NULL"))
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Annotator(Base):
    __tablename__ = "annotators"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="annotator")
    attribute: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float, default=now)
    # Revision 0003. db_login: the PostgreSQL login this person connects with (row-level security maps
    # current_user to this row); None on SQLite and for people without a login. disabled_at: set when
    # a maintainer disables the person; their labels stay.
    db_login: Mapped[str | None] = mapped_column(String(63), unique=True)
    disabled_at: Mapped[float | None] = mapped_column(Float)


class Label(Base):
    """One labelling act. Never updated or deleted: the history is the audit trail and the undo stack."""

    __tablename__ = "labels"
    __table_args__ = (Index("ix_labels_crop_attribute", "crop_id", "attribute", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    crop_id: Mapped[int] = mapped_column(ForeignKey("crops.id", ondelete="CASCADE"))
    attribute: Mapped[str] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(Text)  # None: the label was cleared (undo of a first label)
    annotator_id: Mapped[int | None] = mapped_column(
        ForeignKey("annotators.id", ondelete="SET NULL"), index=True
    )
    source: Mapped[str] = mapped_column(String(16), default="app")  # app|undo|redo|review|import
    # Revision 0004: clicked|accepted|propagated|inherited|imported|merged (None: before 0004, a click).
    provenance: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float, default=now)


class CurrentLabel(Base):
    __tablename__ = "current_labels"
    __table_args__ = (Index("ix_current_labels_attribute_value", "attribute", "value"),)
    crop_id: Mapped[int] = mapped_column(ForeignKey("crops.id", ondelete="CASCADE"), primary_key=True)
    attribute: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"))
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("annotators.id", ondelete="SET NULL"))


class Lease(Base):
    __tablename__ = "leases"
    __table_args__ = (UniqueConstraint("attribute", "crop_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attribute: Mapped[str] = mapped_column(String(64))
    crop_id: Mapped[int] = mapped_column(ForeignKey("crops.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[float] = mapped_column(Float)


class SplitAssignment(Base):
    """Which subset (train/query/gallery) a crop is in, per named split."""

    __tablename__ = "split_assignments"
    split: Mapped[str] = mapped_column(String(64), primary_key=True)
    crop_id: Mapped[int] = mapped_column(ForeignKey("crops.id", ondelete="CASCADE"), primary_key=True)
    subset: Mapped[str] = mapped_column(String(16))


class Setting(Base):
    """Project-wide settings the commands record (for example the pHash grouping threshold)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict | list | str | int | float | None] = mapped_column(JSON)


class StoreCount(Base):
    """Counts the database keeps with triggers (revision 0005), so status reads a few rows instead of
    counting millions: ``crops``, and ``labelled:<attribute>`` (current labels with a value). A
    counter is the sum of ``n`` over its slots. Nothing but the triggers writes this table."""

    __tablename__ = "store_counts"
    counter: Mapped[str] = mapped_column(String(80), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class Release(Base):
    __tablename__ = "releases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(32), unique=True)
    path: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, default=now)
