"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 04:54:57.125566
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "annotators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("attribute", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotators")),
        sa.UniqueConstraint("name", name=op.f("uq_annotators_name")),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_releases")),
        sa.UniqueConstraint("version", name=op.f("uq_releases_version")),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings")),
    )
    op.create_table(
        "videos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("fps", sa.Float(), nullable=True),
        sa.Column("frame_count", sa.Integer(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_committed_frame", sa.Integer(), nullable=False),
        sa.Column("detector", sa.String(length=64), nullable=True),
        sa.Column("weights_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_videos")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_videos_fingerprint")),
    )
    op.create_table(
        "tracks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("video_id", sa.Integer(), nullable=False),
        sa.Column("tracker_id", sa.Integer(), nullable=False),
        sa.Column("first_frame", sa.Integer(), nullable=False),
        sa.Column("last_frame", sa.Integer(), nullable=False),
        sa.Column("shot_index", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["video_id"], ["videos.id"], name=op.f("fk_tracks_video_id_videos"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracks")),
        sa.UniqueConstraint("video_id", "tracker_id", name=op.f("uq_tracks_video_id")),
    )
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tracks_video_id"), ["video_id"], unique=False)

    op.create_table(
        "crops",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("video_id", sa.Integer(), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("frame_index", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=True),
        sa.Column("x1", sa.Float(), nullable=False),
        sa.Column("y1", sa.Float(), nullable=False),
        sa.Column("x2", sa.Float(), nullable=False),
        sa.Column("y2", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("blur", sa.Float(), nullable=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("phash", sa.BigInteger(), nullable=True),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("phash_group", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["track_id"], ["tracks.id"], name=op.f("fk_crops_track_id_tracks"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["video_id"], ["videos.id"], name=op.f("fk_crops_video_id_videos"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crops")),
        sa.UniqueConstraint("path", name=op.f("uq_crops_path")),
        sa.UniqueConstraint("video_id", "frame_index", "track_id", name=op.f("uq_crops_video_id")),
    )
    with op.batch_alter_table("crops", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_crops_phash_group"), ["phash_group"], unique=False)
        batch_op.create_index(batch_op.f("ix_crops_track_id"), ["track_id"], unique=False)

    op.create_table(
        "identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("video_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("gender", sa.String(length=32), nullable=True),
        sa.Column("exemplar_crop_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["annotators.id"], name=op.f("fk_identities_created_by_annotators"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["exemplar_crop_id"], ["crops.id"], name=op.f("fk_identities_exemplar_crop_id_crops"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["video_id"], ["videos.id"], name=op.f("fk_identities_video_id_videos"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
    )
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identities_video_id"), ["video_id"], unique=False)

    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crop_id", sa.Integer(), nullable=False),
        sa.Column("attribute", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("annotator_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotator_id"], ["annotators.id"], name=op.f("fk_labels_annotator_id_annotators"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["crop_id"], ["crops.id"], name=op.f("fk_labels_crop_id_crops"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labels")),
    )
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_labels_annotator_id"), ["annotator_id"], unique=False)
        batch_op.create_index("ix_labels_crop_attribute", ["crop_id", "attribute", "id"], unique=False)

    op.create_table(
        "leases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attribute", sa.String(length=64), nullable=False),
        sa.Column("crop_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotator_id"], ["annotators.id"], name=op.f("fk_leases_annotator_id_annotators"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["crop_id"], ["crops.id"], name=op.f("fk_leases_crop_id_crops"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leases")),
        sa.UniqueConstraint("attribute", "crop_id", name=op.f("uq_leases_attribute")),
    )
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_leases_annotator_id"), ["annotator_id"], unique=False)

    op.create_table(
        "split_assignments",
        sa.Column("split", sa.String(length=64), nullable=False),
        sa.Column("crop_id", sa.Integer(), nullable=False),
        sa.Column("subset", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["crop_id"], ["crops.id"], name=op.f("fk_split_assignments_crop_id_crops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("split", "crop_id", name=op.f("pk_split_assignments")),
    )
    op.create_table(
        "current_labels",
        sa.Column("crop_id", sa.Integer(), nullable=False),
        sa.Column("attribute", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("label_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["annotator_id"],
            ["annotators.id"],
            name=op.f("fk_current_labels_annotator_id_annotators"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["crop_id"], ["crops.id"], name=op.f("fk_current_labels_crop_id_crops"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["label_id"], ["labels.id"], name=op.f("fk_current_labels_label_id_labels"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("crop_id", "attribute", name=op.f("pk_current_labels")),
    )
    with op.batch_alter_table("current_labels", schema=None) as batch_op:
        batch_op.create_index("ix_current_labels_attribute_value", ["attribute", "value"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("current_labels", schema=None) as batch_op:
        batch_op.drop_index("ix_current_labels_attribute_value")

    op.drop_table("current_labels")
    op.drop_table("split_assignments")
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leases_annotator_id"))

    op.drop_table("leases")
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.drop_index("ix_labels_crop_attribute")
        batch_op.drop_index(batch_op.f("ix_labels_annotator_id"))

    op.drop_table("labels")
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identities_video_id"))

    op.drop_table("identities")
    with op.batch_alter_table("crops", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crops_track_id"))
        batch_op.drop_index(batch_op.f("ix_crops_phash_group"))

    op.drop_table("crops")
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracks_video_id"))

    op.drop_table("tracks")
    op.drop_table("videos")
    op.drop_table("settings")
    op.drop_table("releases")
    op.drop_table("annotators")
