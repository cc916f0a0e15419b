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
    op.create_index("ix_predictions_attribute_value", "predictions", ["attribute", "value", "confidence", "crop_id"])
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
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql(op.get_bind())


def _upgrade_postgresql(bind) -> None:
    """Rights for confirming candidate characters and setting static attributes on a character.

    - candidates: writers confirm a cluster (identity_id, confirmed_by, confirmed_at); no row-level
      security on candidates, like tracks.
    - identities.attributes: an annotator of age (say) sets age on a character. identities has
      row-level security (0003), whose update policy lets only identity labellers through (renames);
      a second update policy lets every writer reach the row, and a trigger decides per column: a
      rename still needs the right to label identities, a changed key of ``attributes`` the right to
      label that attribute. A refused row is skipped (as a policy would hide it), so the caller's row
      count reads as a refusal.
    - labels: crops an identity labeller assigns to a character inherit its static attributes; those
      labels (provenance ``inherited``, and their undo) are written under the identity labeller's
      own annotator row.
    - change_points: see :func:`_change_point_rights`.
    """
    from portrait_builder.store.security import grant_writer_columns, group_roles

    grant_writer_columns(bind, "candidates", ["identity_id", "confirmed_by", "confirmed_at"], privilege="UPDATE")
    grant_writer_columns(bind, "identities", ["attributes"], privilege="UPDATE")
    schema = bind.execute(sa.text("SELECT current_schema()")).scalar_one()
    q = bind.dialect.identifier_preparer.quote_identifier
    s = q(schema)
    roles = group_roles(bind)
    writers = ", ".join(q(roles[r]) for r in ("annotator", "reviewer"))
    maintainer = roles["maintainer"].replace("'", "''")
    me, may, ident = f"{s}.portrait_me()", f"{s}.portrait_may_write", f"{s}.portrait_identity_attribute()"
    bind.exec_driver_sql(f"""CREATE POLICY portrait_character_attributes ON {s}.identities FOR UPDATE TO {writers}
        USING (true) WITH CHECK (true)""")
    bind.exec_driver_sql(f"""
        CREATE FUNCTION {s}.portrait_check_character_update() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE k text;
        BEGIN
            -- the tables' owner (migrations, scripts) and maintainers change characters freely
            IF pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'USAGE')
               OR pg_has_role(current_user, '{maintainer}', 'USAGE') THEN
                RETURN NEW;
            END IF;
            IF NEW.name IS DISTINCT FROM OLD.name AND NOT {may}({ident}) THEN
                RETURN NULL;
            END IF;
            FOR k IN SELECT jsonb_object_keys(coalesce(NEW.attributes::jsonb, '{{}}'))
                     UNION SELECT jsonb_object_keys(coalesce(OLD.attributes::jsonb, '{{}}')) LOOP
                IF (NEW.attributes::jsonb -> k) IS DISTINCT FROM (OLD.attributes::jsonb -> k) AND NOT {may}(k) THEN
                    RETURN NULL;
                END IF;
            END LOOP;
            RETURN NEW;
        END $$""")
    bind.exec_driver_sql(f"""CREATE TRIGGER portrait_check_character_update BEFORE UPDATE ON {s}.identities
        FOR EACH ROW EXECUTE FUNCTION {s}.portrait_check_character_update()""")
    bind.exec_driver_sql(f"""CREATE POLICY portrait_insert_inherited ON {s}.labels FOR INSERT TO {writers}
        WITH CHECK (annotator_id = {me} AND provenance = 'inherited' AND {may}({ident}))""")
    _change_point_rights(bind, s, writers, q(roles["maintainer"]), me, may)


def _change_point_rights(bind, s: str, writers: str, mnt: str, me: str, may: str) -> None:
    """change_points: a writer marks a change point of an attribute they may label, as themselves, and
    removes (or undoes) only their own; everyone reads them, maintainers do anything (as revision 0003
    does for labels and leases)."""
    bind.exec_driver_sql(f"GRANT INSERT (track_id, attribute, frame_index, annotator_id, created_at), DELETE "
                         f"ON {s}.change_points TO {writers}")
    seq = bind.execute(sa.text("SELECT pg_get_serial_sequence(:t, 'id')"),
                       {"t": f"{s}.change_points"}).scalar()  # fmt: skip
    if seq:
        bind.exec_driver_sql(f"GRANT USAGE ON SEQUENCE {seq} TO {writers}")
    bind.exec_driver_sql(f"ALTER TABLE {s}.change_points ENABLE ROW LEVEL SECURITY")
    bind.exec_driver_sql(f"CREATE POLICY portrait_read ON {s}.change_points FOR SELECT TO {writers} USING (true)")
    bind.exec_driver_sql(f"CREATE POLICY portrait_maintain ON {s}.change_points FOR ALL TO {mnt} "
                         "USING (true) WITH CHECK (true)")
    bind.exec_driver_sql(f"""CREATE POLICY portrait_mark_own ON {s}.change_points FOR INSERT TO {writers}
        WITH CHECK (annotator_id = {me} AND {may}(attribute))""")
    bind.exec_driver_sql(f"""CREATE POLICY portrait_unmark_own ON {s}.change_points FOR DELETE TO {writers}
        USING (annotator_id = {me} AND {may}(attribute))""")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        schema = bind.dialect.identifier_preparer.quote_identifier(bind.execute(sa.text("SELECT current_schema()")).scalar_one())
        bind.exec_driver_sql(f"DROP POLICY IF EXISTS portrait_insert_inherited ON {schema}.labels")
        bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS portrait_check_character_update ON {schema}.identities")
        bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS {schema}.portrait_check_character_update()")
        bind.exec_driver_sql(f"DROP POLICY IF EXISTS portrait_character_attributes ON {schema}.identities")
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
