"""store counts: crops and labelled crops per attribute, kept by the database

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 14:00:00

``portrait status`` counted every crop and grouped every current label by attribute on each call:
1.8 s at 1,000,000 crops and 3.7 million current labels, growing with the store. ``store_counts``
holds those counts instead, as rows ``(counter, slot, n)``: counter ``crops``, and
``labelled:<attribute>`` for the current labels of that attribute whose value is not NULL (a cleared
label is not a labelled crop). A counter's value is the sum of ``n`` over its slots.

Triggers keep the counts, so every writer keeps them right without knowing about them (the label
writes, imports, merges, undo, ingest, deleting a crop or a movie and its cascades, psql):

* PostgreSQL: statement-level triggers with transition tables, one counter update per statement
  and attribute however many rows it touches (a COPY of millions of crops costs one update, not
  millions). The functions are ``SECURITY DEFINER`` (they run as the tables' owner), so annotators'
  writes through ``portrait_set_current`` keep the counts while no group role may write
  ``store_counts`` itself. Each transaction adds its delta into the slot of its server process
  (``pg_backend_pid()`` modulo 16), so concurrent annotators of one attribute rarely wait on one row.
* SQLite (one writer at a time): row triggers on slot 0.

The upgrade fills the counts of an existing store; the downgrade drops the triggers and the table.
A later revision that rebuilds ``crops`` or ``current_labels`` on SQLite (Alembic's batch mode copies
the table) drops these triggers with it and must create them again (``_sqlite_triggers`` below).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SLOTS = 16  # PostgreSQL: concurrent transactions spread their deltas over this many rows per counter


def upgrade() -> None:
    op.create_table(
        "store_counts",
        sa.Column("counter", sa.String(length=80), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("counter", "slot", name=op.f("pk_store_counts")),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _postgresql_triggers(bind)
    else:
        _sqlite_triggers(bind)
    # Backfill after the triggers exist, in the same transaction: creating a trigger locks its table
    # against writes until the migration commits, so no write falls between the counts and the triggers.
    bind.exec_driver_sql("INSERT INTO store_counts (counter, slot, n) SELECT 'crops', 0, count(*) FROM crops")
    bind.exec_driver_sql(
        "INSERT INTO store_counts (counter, slot, n) SELECT 'labelled:' || attribute, 0, count(*) "
        "FROM current_labels WHERE value IS NOT NULL GROUP BY attribute")


def _postgresql_triggers(bind) -> None:
    schema = bind.execute(sa.text("SELECT current_schema()")).scalar_one()
    s = bind.dialect.identifier_preparer.quote_identifier(schema)

    def run(sql: str) -> None:
        bind.exec_driver_sql(sql)

    add = f"""INSERT INTO {s}.store_counts AS c (counter, slot, n)
              SELECT d.counter, mod(pg_backend_pid(), {SLOTS}), d.n FROM delta d
              ON CONFLICT (counter, slot) DO UPDATE SET n = c.n + EXCLUDED.n"""
    # One function per table; TG_OP picks the transition tables the firing trigger has (plpgsql plans
    # a statement only when it first runs, so a branch naming a table this trigger lacks never runs).
    run(f"""
        CREATE FUNCTION {s}.portrait_count_current_labels() RETURNS trigger LANGUAGE plpgsql
        SECURITY DEFINER SET search_path = pg_catalog, {s} AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                WITH delta AS (SELECT 'labelled:' || attribute AS counter, count(*) AS n FROM new_rows
                               WHERE value IS NOT NULL GROUP BY attribute)
                {add};
            ELSIF TG_OP = 'DELETE' THEN
                WITH delta AS (SELECT 'labelled:' || attribute AS counter, -count(*) AS n FROM old_rows
                               WHERE value IS NOT NULL GROUP BY attribute)
                {add};
            ELSE
                WITH delta AS (
                    SELECT 'labelled:' || attribute AS counter, sum(d) AS n FROM (
                        SELECT attribute, 1 AS d FROM new_rows WHERE value IS NOT NULL
                        UNION ALL SELECT attribute, -1 FROM old_rows WHERE value IS NOT NULL) x
                    GROUP BY attribute HAVING sum(d) <> 0)
                {add};
            END IF;
            RETURN NULL;
        END $$""")
    run(f"""
        CREATE FUNCTION {s}.portrait_count_crops() RETURNS trigger LANGUAGE plpgsql
        SECURITY DEFINER SET search_path = pg_catalog, {s} AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                WITH delta AS (SELECT 'crops' AS counter, count(*) AS n FROM new_rows HAVING count(*) > 0)
                {add};
            ELSE
                WITH delta AS (SELECT 'crops' AS counter, -count(*) AS n FROM old_rows HAVING count(*) > 0)
                {add};
            END IF;
            RETURN NULL;
        END $$""")
    # TRUNCATE has no transition table: it empties the table, so its counters go to zero.
    run(f"""
        CREATE FUNCTION {s}.portrait_count_truncate() RETURNS trigger LANGUAGE plpgsql
        SECURITY DEFINER SET search_path = pg_catalog, {s} AS $$
        BEGIN
            DELETE FROM {s}.store_counts
            WHERE (TG_TABLE_NAME = 'crops' AND counter = 'crops')
               OR (TG_TABLE_NAME = 'current_labels' AND starts_with(counter, 'labelled:'));
            RETURN NULL;
        END $$""")
    for fn in ("portrait_count_current_labels", "portrait_count_crops", "portrait_count_truncate"):
        run(f"REVOKE ALL ON FUNCTION {s}.{fn}() FROM PUBLIC")
    for event, refs in (("INSERT", "NEW TABLE AS new_rows"), ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                        ("DELETE", "OLD TABLE AS old_rows")):
        run(f"""CREATE TRIGGER portrait_count_{event.lower()} AFTER {event} ON {s}.current_labels
                REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION {s}.portrait_count_current_labels()""")
    for event, refs in (("INSERT", "NEW TABLE AS new_rows"), ("DELETE", "OLD TABLE AS old_rows")):
        run(f"""CREATE TRIGGER portrait_count_{event.lower()} AFTER {event} ON {s}.crops
                REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION {s}.portrait_count_crops()""")
    for table in ("crops", "current_labels"):
        run(f"""CREATE TRIGGER portrait_count_truncate AFTER TRUNCATE ON {s}.{table}
                FOR EACH STATEMENT EXECUTE FUNCTION {s}.portrait_count_truncate()""")
    # Only the triggers move the counts: the default privileges of revision 0003 would let maintainers
    # write this table (every group may read it, which `portrait status` needs).
    recorded = bind.execute(sa.text("SELECT value FROM settings WHERE key = 'db_group_roles'")).scalar()
    if recorded:
        q = bind.dialect.identifier_preparer.quote_identifier
        names = ", ".join(q(r) for r in dict(recorded).values())
        run(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {s}.store_counts FROM {names}")
        run(f"GRANT SELECT ON {s}.store_counts TO {names}")


def _sqlite_triggers(bind) -> None:
    def bump(key: str, delta: str) -> str:
        # not INSERT OR IGNORE: an outer statement's conflict clause (the current-label upsert)
        # overrides the one of a statement inside a trigger
        return (f"INSERT INTO store_counts (counter, slot, n) SELECT {key}, 0, 0 WHERE NOT EXISTS "
                f"(SELECT 1 FROM store_counts WHERE counter = {key} AND slot = 0); "
                f"UPDATE store_counts SET n = n + ({delta}) WHERE counter = {key} AND slot = 0;")

    new_key, old_key = "'labelled:' || NEW.attribute", "'labelled:' || OLD.attribute"
    for sql in (
        f"""CREATE TRIGGER portrait_count_current_insert AFTER INSERT ON current_labels
            WHEN NEW.value IS NOT NULL BEGIN {bump(new_key, "1")} END""",
        f"""CREATE TRIGGER portrait_count_current_delete AFTER DELETE ON current_labels
            WHEN OLD.value IS NOT NULL BEGIN {bump(old_key, "-1")} END""",
        f"""CREATE TRIGGER portrait_count_current_update AFTER UPDATE ON current_labels BEGIN
            {bump(old_key, "-(OLD.value IS NOT NULL)")} {bump(new_key, "NEW.value IS NOT NULL")} END""",
        f"""CREATE TRIGGER portrait_count_crops_insert AFTER INSERT ON crops BEGIN {bump("'crops'", "1")} END""",
        f"""CREATE TRIGGER portrait_count_crops_delete AFTER DELETE ON crops BEGIN {bump("'crops'", "-1")} END""",
    ):
        bind.exec_driver_sql(sql)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        s = bind.dialect.identifier_preparer.quote_identifier(bind.execute(sa.text("SELECT current_schema()")).scalar_one())
        for table, events in (("current_labels", ("insert", "update", "delete", "truncate")),
                              ("crops", ("insert", "delete", "truncate"))):
            for event in events:
                bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS portrait_count_{event} ON {s}.{table}")
        for fn in ("portrait_count_current_labels", "portrait_count_crops", "portrait_count_truncate"):
            bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS {s}.{fn}()")
    else:
        for name in ("current_insert", "current_delete", "current_update", "crops_insert", "crops_delete"):
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS portrait_count_{name}")
    op.drop_table("store_counts")
