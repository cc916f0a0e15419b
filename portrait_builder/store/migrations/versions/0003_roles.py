"""database-enforced roles: one login per person, group roles, row-level security

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 10:45:00

Both stores: ``annotators`` gains ``db_login`` (the PostgreSQL login of that person, unique) and
``disabled_at`` (set when a maintainer disables the person; their labels stay).

PostgreSQL only (a SQLite store is single-workstation and has no logins): three group roles per
database, ``portrait_<db>_annotator|reviewer|maintainer``, with table and column privileges, and
row-level security on labels, current_labels, identities, leases and crops, so that whoever holds
the project folder and a login can write only what the role allows, even with psql:

* everyone in a group reads crops, tracks, identities, labels, current labels, leases and settings;
* annotators and reviewers insert labels only under their own annotator row and, for annotators,
  only for their assigned attribute (an identity annotator also writes gender, as the app does);
  reviewers may label any attribute; both take, renew and release only their own leases (an expired
  lease of anyone may be cleared, which is how a crashed client's crops come back); they create
  characters only when they may label identity;
* current_labels is written by the SECURITY DEFINER function ``portrait_set_current``, which
  recomputes the current label of a (crop, attribute) from the history, so nobody needs write access
  to it and nobody can make it disagree with the history;
* only maintainers (and the owner of the tables, who runs migrations) update or delete label
  history, change annotators, ingest, and run split and release.
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Tables with row-level security; every other table is covered by plain privileges.
RLS_TABLES = ("labels", "current_labels", "identities", "leases", "crops")


def _roles(bind) -> dict[str, str]:
    from portrait_builder.store.security import group_role_names

    return group_role_names(bind.execute(sa.text("SELECT current_database()")).scalar_one())


def upgrade() -> None:
    with op.batch_alter_table("annotators", schema=None) as batch_op:
        batch_op.add_column(sa.Column("db_login", sa.String(length=63), nullable=True))
        batch_op.add_column(sa.Column("disabled_at", sa.Float(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_annotators_db_login"), ["db_login"])
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _upgrade_postgresql(bind)


def _upgrade_postgresql(bind) -> None:
    from portrait_builder.errors import UserError
    from portrait_builder.store.security import GROUP_ROLES_SETTING

    may_create = bind.execute(
        sa.text("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    ).scalar()
    roles = _roles(bind)
    missing = [r for r in roles.values() if bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": r}).first() is None]
    if missing and not may_create:
        user = bind.execute(sa.text("SELECT current_user")).scalar_one()
        raise UserError(
            f"schema revision 0003 creates the project's group roles ({', '.join(missing)}): login {user} needs "
            f"CREATEROLE (a server administrator runs: ALTER ROLE {user} CREATEROLE)"
        )
    schema = bind.execute(sa.text("SELECT current_schema()")).scalar_one()
    q = bind.dialect.identifier_preparer.quote_identifier
    s = q(schema)
    ann, rev, mnt = (q(roles[r]) for r in ("annotator", "reviewer", "maintainer"))
    writers = f"{ann}, {rev}"
    everyone = f"{ann}, {rev}, {mnt}"

    def run(sql: str) -> None:
        bind.exec_driver_sql(sql)

    for name in missing:
        run(f"CREATE ROLE {q(name)} NOLOGIN")
    bind.execute(
        sa.text("INSERT INTO settings (key, value) VALUES (:k, CAST(:v AS json))"),
        {"k": GROUP_ROLES_SETTING, "v": json.dumps(roles)},
    )

    # Who the connection is, as an annotator row. Invoker's rights (current_user is the caller's
    # login); every group may read annotators.
    run(f"""
        CREATE FUNCTION {s}.portrait_me() RETURNS integer LANGUAGE sql STABLE AS $$
            SELECT id FROM {s}.annotators WHERE db_login = current_user AND disabled_at IS NULL
        $$""")
    run(f"""
        CREATE FUNCTION {s}.portrait_identity_attribute() RETURNS text LANGUAGE sql STABLE AS $$
            SELECT coalesce((SELECT value #>> '{{}}' FROM {s}.settings WHERE key = 'identity_attribute'), 'identity')
        $$""")
    # The service's writable_attributes, in SQL: reviewers and maintainers any attribute, an annotator
    # their assigned one, an identity annotator also gender (set with the identity, as in the paper).
    run(f"""
        CREATE FUNCTION {s}.portrait_may_write(attr text) RETURNS boolean LANGUAGE sql STABLE AS $$
            SELECT EXISTS (
                SELECT 1 FROM {s}.annotators a
                WHERE a.db_login = current_user AND a.disabled_at IS NULL
                  AND (a.role IN ('reviewer', 'maintainer') OR a.attribute = attr
                       OR (attr = 'gender' AND a.attribute = {s}.portrait_identity_attribute())))
        $$""")
    # current_labels follows the history: the newest label of the (crop, attribute) of label p_label.
    # Definer's rights, so writers need no write access to current_labels; safe for anyone to call,
    # since it only ever moves current_labels to what the history says.
    run(f"""
        CREATE FUNCTION {s}.portrait_set_current(p_label integer) RETURNS void LANGUAGE sql VOLATILE
        SECURITY DEFINER SET search_path = pg_catalog, {s} AS $$
            INSERT INTO {s}.current_labels (crop_id, attribute, value, label_id, annotator_id)
            SELECT n.crop_id, n.attribute, n.value, n.id, n.annotator_id
            FROM {s}.labels l
            CROSS JOIN LATERAL (
                SELECT * FROM {s}.labels x WHERE x.crop_id = l.crop_id AND x.attribute = l.attribute
                ORDER BY x.id DESC LIMIT 1) n
            WHERE l.id = p_label
            ON CONFLICT (crop_id, attribute) DO UPDATE
                SET value = EXCLUDED.value, label_id = EXCLUDED.label_id, annotator_id = EXCLUDED.annotator_id
                WHERE current_labels.label_id < EXCLUDED.label_id
        $$""")
    run(f"REVOKE ALL ON FUNCTION {s}.portrait_set_current(integer) FROM PUBLIC")
    run(f"GRANT EXECUTE ON FUNCTION {s}.portrait_set_current(integer) TO {everyone}")

    # -- privileges --------------------------------------------------------------------------
    run(f"GRANT USAGE ON SCHEMA {s} TO {everyone}")
    run(f"GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {writers}")
    run(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {mnt}")
    run(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO {mnt}")
    # Tables later revisions add: readable by every group, writable by maintainers (the owner runs migrations).
    run(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO {writers}")
    run(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {mnt}")
    run(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {mnt}")
    # Column lists leave out the id: a writer cannot choose a label id (ids order the history).
    run(f"GRANT INSERT (crop_id, attribute, value, annotator_id, source, created_at) ON {s}.labels TO {writers}")
    run(f"GRANT INSERT (video_id, name, gender, exemplar_crop_id, created_by, created_at) ON {s}.identities TO {writers}")
    run(f"GRANT UPDATE (name) ON {s}.identities TO {writers}")
    run(f"GRANT INSERT (attribute, crop_id, annotator_id, expires_at), DELETE ON {s}.leases TO {writers}")
    run(f"GRANT UPDATE (expires_at) ON {s}.leases TO {writers}")
    # The claim locks candidate crops (SELECT ... FOR UPDATE SKIP LOCKED), which PostgreSQL allows
    # only with UPDATE on some column; the crops policies below make every real update fail.
    run(f"GRANT UPDATE (phash_group) ON {s}.crops TO {writers}")
    for table in ("labels", "identities", "leases"):
        seq = bind.execute(sa.text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": f"{schema}.{table}"}).scalar()
        if seq:
            run(f"GRANT USAGE ON SEQUENCE {seq} TO {writers}")

    # -- row-level security ------------------------------------------------------------------
    for table in RLS_TABLES:
        t = f"{s}.{table}"
        run(f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY")
        run(f"CREATE POLICY portrait_read ON {t} FOR SELECT TO {writers} USING (true)")
        run(f"CREATE POLICY portrait_maintain ON {t} FOR ALL TO {mnt} USING (true) WITH CHECK (true)")
    me, may = f"{s}.portrait_me()", f"{s}.portrait_may_write"
    run(f"""CREATE POLICY portrait_insert_own ON {s}.labels FOR INSERT TO {writers}
            WITH CHECK (annotator_id = {me} AND {may}(attribute))""")
    run(f"""CREATE POLICY portrait_create_character ON {s}.identities FOR INSERT TO {writers}
            WITH CHECK (created_by = {me} AND {may}({s}.portrait_identity_attribute()))""")
    run(f"""CREATE POLICY portrait_rename_character ON {s}.identities FOR UPDATE TO {writers}
            USING ({may}({s}.portrait_identity_attribute())) WITH CHECK ({may}({s}.portrait_identity_attribute()))""")
    run(f"""CREATE POLICY portrait_take_own ON {s}.leases FOR INSERT TO {writers}
            WITH CHECK (annotator_id = {me} AND {may}(attribute))""")
    run(f"""CREATE POLICY portrait_renew_own ON {s}.leases FOR UPDATE TO {writers}
            USING (annotator_id = {me}) WITH CHECK (annotator_id = {me})""")
    run(f"""CREATE POLICY portrait_release_own ON {s}.leases FOR DELETE TO {writers}
            USING (annotator_id = {me} OR expires_at < extract(epoch FROM now()))""")
    # Lets the claim lock rows (FOR UPDATE needs an UPDATE policy's USING); any actual update fails.
    run(f"""CREATE POLICY portrait_lock_only ON {s}.crops FOR UPDATE TO {writers}
            USING (true) WITH CHECK (false)""")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _downgrade_postgresql(bind)
    with op.batch_alter_table("annotators", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_annotators_db_login"), type_="unique")
        batch_op.drop_column("disabled_at")
        batch_op.drop_column("db_login")


def _downgrade_postgresql(bind) -> None:
    from portrait_builder.store.security import GROUP_ROLES_SETTING

    schema = bind.execute(sa.text("SELECT current_schema()")).scalar_one()
    q = bind.dialect.identifier_preparer.quote_identifier
    s = q(schema)
    # the names the upgrade recorded (should the naming rule ever change, these are the ones that exist)
    recorded = bind.execute(sa.text("SELECT value FROM settings WHERE key = :k"), {"k": GROUP_ROLES_SETTING}).scalar()
    roles = dict(recorded) if recorded else _roles(bind)

    def run(sql: str) -> None:
        bind.exec_driver_sql(sql)

    for table, policies in {
        "labels": ("portrait_insert_own",),
        "identities": ("portrait_create_character", "portrait_rename_character"),
        "leases": ("portrait_take_own", "portrait_renew_own", "portrait_release_own"),
        "crops": ("portrait_lock_only",),
    }.items():
        for policy in policies:
            run(f"DROP POLICY IF EXISTS {policy} ON {s}.{table}")
    for table in RLS_TABLES:
        run(f"DROP POLICY IF EXISTS portrait_read ON {s}.{table}")
        run(f"DROP POLICY IF EXISTS portrait_maintain ON {s}.{table}")
        run(f"ALTER TABLE {s}.{table} DISABLE ROW LEVEL SECURITY")
    run(f"DROP FUNCTION IF EXISTS {s}.portrait_set_current(integer)")
    run(f"DROP FUNCTION IF EXISTS {s}.portrait_may_write(text)")
    run(f"DROP FUNCTION IF EXISTS {s}.portrait_identity_attribute()")
    run(f"DROP FUNCTION IF EXISTS {s}.portrait_me()")
    existing = [r for r in roles.values() if bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": r}).first()]
    if existing:
        names = ", ".join(q(r) for r in existing)
        run(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} REVOKE ALL ON TABLES FROM {names}")
        run(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} REVOKE ALL ON SEQUENCES FROM {names}")
        run(f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {names}")
        run(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {names}")
        run(f"REVOKE ALL ON SCHEMA {s} FROM {names}")
        for name in existing:  # members (people's logins) simply lose the membership; their labels stay
            run(f"DROP ROLE {q(name)}")
    bind.execute(sa.text("DELETE FROM settings WHERE key = :k"), {"k": GROUP_ROLES_SETTING})
