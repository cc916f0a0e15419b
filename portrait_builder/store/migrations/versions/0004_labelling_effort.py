"""labelling effort: candidate characters, predictions, change points, label provenance

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 11:15:00

- ``candidates``: per movie, a cluster of tracks that probably show one character (from face and
  appearance embeddings); ``identity_id`` is set when a person confirms which character it is.
  ``tracks.candidate_id`` says which cluster a track is in (recomputed clusters replace the old ones).
- ``predictions``: one per crop and attribute from a trained baseline, with its confidence and the
  checkpoint's digest. Predictions are never labels: a person's action turns one into a label.
- ``change_points``: where an annotator marked that a dynamic attribute (posture, expression) changes
  inside a track; a label given to a crop runs along the track up to the next change point.
- ``labels.provenance``: how the label came about (clicked, accepted prediction, propagated along a
  track, inherited from the character, imported, merged). Older labels were all clicks.
- ``identities.attributes``: static attributes set once on a character (age, physique, height), which
  crops assigned to it later inherit.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("video_id", sa.Integer(), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=True),
        sa.Column("confirmed_by", sa.Integer(), nullable=True),
        sa.Column("confirmed_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["video_id"], ["videos.id"], name=op.f("fk_candidates_video_id_videos"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["identity_id"], ["identities.id"], name=op.f("fk_candidates_identity_id_identities"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["confirmed_by"], ["annotators.id"], name=op.f("fk_candidates_confirmed_by_annotators"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidates")),
    )
    op.create_index(op.f("ix_candidates_video_id"), "candidates", ["video_id"])
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("candidate_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_tracks_candidate_id_candidates"), "candidates", ["candidate_id"], ["id"], ondelete="SET NULL")
        batch_op.create_index(batch_op.f("ix_tracks_candidate_id"), ["candidate_id"])
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crop_id", sa.Integer(), nullable=False),
        sa.Column("attribute", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["crop_id"], ["crops.id"], name=op.f("fk_predictions_crop_id_crops"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
        sa.UniqueConstraint("crop_id", "attribute", name=op.f("uq_predictions_crop_id")),
    )
    op.create_index("ix_predictions_attribute_value", "predictions", ["attribute", "value"])
    op.create_table(
        "change_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("attribute", sa.String(length=64), nullable=False),
        sa.Column("frame_index", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["track_id"], ["tracks.id"], name=op.f("fk_change_points_track_id_tracks"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["annotator_id"], ["annotators.id"], name=op.f("fk_change_points_annotator_id_annotators"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_points")),
        sa.UniqueConstraint("track_id", "attribute", "frame_index", name=op.f("uq_change_points_track_id")),
    )
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provenance", sa.String(length=16), nullable=True))
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attributes", sa.JSON(), nullable=True))
    # Revision 0003's default privileges make the new tables readable by every group and writable by
    # maintainers; annotators and reviewers also record provenance with their labels (no-op on SQLite).
    from portrait_builder.store.security import grant_writer_columns

    grant_writer_columns(op.get_bind(), "labels", ["provenance"])


def downgrade() -> None:
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.drop_column("attributes")
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.drop_column("provenance")
    op.drop_table("change_points")
    op.drop_index("ix_predictions_attribute_value", table_name="predictions")
    op.drop_table("predictions")
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracks_candidate_id"))
        batch_op.drop_constraint(batch_op.f("fk_tracks_candidate_id_candidates"), type_="foreignkey")
        batch_op.drop_column("candidate_id")
    op.drop_index(op.f("ix_candidates_video_id"), table_name="candidates")
    op.drop_table("candidates")
