"""film crops: shot index, face visibility, face box and face embedding per crop

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 10:30:00

Films need more from a crop than surveillance footage did: expression and age need a visible face,
characters are linked across shots by face embeddings, and a crop's shot says which stretch of film
it belongs to. All columns are nullable: crops ingested before this revision simply have no face data.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crops", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shot_index", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("face_visible", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("face_x1", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("face_y1", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("face_x2", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("face_y2", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("face_embedding", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("crops", schema=None) as batch_op:
        for col in ("face_embedding", "face_y2", "face_x2", "face_y1", "face_x1", "face_visible", "shot_index"):
            batch_op.drop_column(col)
