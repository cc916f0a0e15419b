"""The database enforces the roles (revision 0003): raw SQL through psycopg as each person's own login,
bypassing the service, is refused where the role does not allow it; a maintainer may do all of it.

The reference is PostgreSQL itself: every refusal must be SQLSTATE 42501 (insufficient privilege:
"permission denied" or a row-level security policy), nothing else.
"""

from __future__ import annotations

import pytest
from psycopg.errors import InsufficientPrivilege

LABEL = "INSERT INTO labels (crop_id, attribute, value, annotator_id, source, created_at) VALUES (%s, %s, %s, %s, 'app', 0)"
LEASE = "INSERT INTO leases (attribute, crop_id, annotator_id, expires_at) VALUES (%s, %s, %s, 1e12)"


def refused(conn, sql, params=()):
    with pytest.raises(InsufficientPrivilege) as info:
        conn.execute(sql, params)
    return str(info.value).splitlines()[0]


def current(conn, crop_id, attribute):
    return conn.execute("SELECT value, label_id FROM current_labels WHERE crop_id = %s AND attribute = %s",
                        (crop_id, attribute)).fetchone()


def test_annotator_writes_only_own_labels_of_own_attribute(team):
    crop = team.crop_ids[0]
    me, other = team.ids["ann_age"], team.ids["ann_id"]
    with team.connect("ann_age") as conn:
        # allowed: a label of my attribute under my row; current_labels follows it through the definer function
        label_id = conn.execute(LABEL + " RETURNING id", (crop, "age", "elderly", me)).fetchone()[0]
        conn.execute("SELECT portrait_set_current(%s)", (label_id,))
        assert current(conn, crop, "age") == ("elderly", label_id)
        # another attribute, another annotator's row: refused by the row-level security policy
        assert "row-level security" in refused(conn, LABEL, (crop, "height", "tall", me))
        assert "row-level security" in refused(conn, LABEL, (crop, "age", "child", other))
        assert "row-level security" in refused(conn, LABEL, (crop, "gender", "female", me))  # gender goes with identity
        # the history is append-only for everyone but maintainers; current_labels is never written directly
        assert "permission denied" in refused(conn, "UPDATE labels SET value = 'child' WHERE id = %s", (label_id,))
        assert "permission denied" in refused(conn, "DELETE FROM labels WHERE id = %s", (label_id,))
        assert "permission denied" in refused(conn, "UPDATE current_labels SET value = 'child'")
        assert "permission denied" in refused(conn, "DELETE FROM current_labels")
        # nor can a writer choose a label id (ids order the history)
        assert "permission denied" in refused(
            conn, "INSERT INTO labels (id, crop_id, attribute, value, annotator_id, source, created_at) "
                  "VALUES (999999, %s, 'age', 'child', %s, 'app', 0)", (crop, me))
        # the definer function only ever moves current_labels to the history's newest label
        conn.execute("SELECT portrait_set_current(%s)", (label_id,))
        assert current(conn, crop, "age") == ("elderly", label_id)
    with team.connect("chief") as conn:
        assert conn.execute("SELECT count(*) FROM labels WHERE id = %s", (label_id,)).fetchone()[0] == 1


def test_annotator_takes_and_releases_only_own_leases(team):
    crop_a, crop_b = team.crop_ids[1], team.crop_ids[2]
    me, other = team.ids["ann_age"], team.ids["ann_id"]
    with team.connect("ann_id") as conn:
        conn.execute(LEASE, ("identity", crop_b, other))
    with team.connect("ann_age") as conn:
        conn.execute(LEASE, ("age", crop_a, me))  # my own lease of my queue: allowed
        assert "row-level security" in refused(conn, LEASE, ("age", team.crop_ids[3], other))  # for someone else
        assert "row-level security" in refused(conn, LEASE, ("height", team.crop_ids[3], me))  # another queue
        # someone else's live lease: invisible to UPDATE and DELETE (0 rows), and still there
        assert conn.execute("UPDATE leases SET expires_at = 0 WHERE crop_id = %s", (crop_b,)).rowcount == 0
        assert conn.execute("DELETE FROM leases WHERE crop_id = %s", (crop_b,)).rowcount == 0
        assert "permission denied" in refused(conn, "UPDATE leases SET annotator_id = %s WHERE crop_id = %s", (other, crop_a))
        assert conn.execute("UPDATE leases SET expires_at = 2e12 WHERE crop_id = %s", (crop_a,)).rowcount == 1
        assert conn.execute("DELETE FROM leases WHERE crop_id = %s", (crop_a,)).rowcount == 1
        assert conn.execute("SELECT annotator_id FROM leases WHERE crop_id = %s", (crop_b,)).fetchone() == (other,)
    with team.connect("ann_id") as conn:
        conn.execute("DELETE FROM leases WHERE crop_id = %s", (crop_b,))


def test_no_split_release_ingest_or_annotator_changes_for_annotators_and_reviewers(team):
    crop = team.crop_ids[0]
    for person in ("ann_age", "rev"):
        with team.connect(person) as conn:
            refused(conn, "INSERT INTO split_assignments (split, crop_id, subset) VALUES ('default', %s, 'train')", (crop,))
            refused(conn, "INSERT INTO releases (version, path, manifest_sha256, created_at) VALUES ('v9', '/r', 'x', 0)")
            refused(conn, "INSERT INTO settings (key, value) VALUES ('split:default', '{}')")
            refused(conn, "UPDATE annotators SET role = 'maintainer'")
            refused(conn, "INSERT INTO annotators (name, role, created_at) VALUES ('mallory', 'maintainer', 0)")
            refused(conn, "DELETE FROM crops")
            refused(conn, "UPDATE crops SET phash_group = 1")  # the claim may lock crops, never change them
            refused(conn, "UPDATE videos SET status = 'failed'")


def test_characters_only_by_those_who_label_identity(team):
    with team.connect("ann_age") as conn:
        video = conn.execute("SELECT video_id FROM crops WHERE id = %s", (team.crop_ids[0],)).fetchone()[0]
        sql = "INSERT INTO identities (video_id, gender, created_by, created_at) VALUES (%s, 'female', %s, 0) RETURNING id"
        assert "row-level security" in refused(conn, sql, (video, team.ids["ann_age"]))
    with team.connect("ann_id") as conn:
        ident = conn.execute(sql, (video, team.ids["ann_id"])).fetchone()[0]
        assert "row-level security" in refused(conn, sql, (video, team.ids["ann_age"]))  # not in another's name
        conn.execute("UPDATE identities SET name = 'Celia' WHERE id = %s", (ident,))  # rename: allowed
        assert "permission denied" in refused(conn, "UPDATE identities SET video_id = %s WHERE id = %s", (video, ident))
        assert "permission denied" in refused(conn, "DELETE FROM identities WHERE id = %s", (ident,))
        # an identity annotator labels identity and gender together (the paper's Fig. 8)
        conn.execute(LABEL, (team.crop_ids[4], "identity", str(ident), team.ids["ann_id"]))
        conn.execute(LABEL, (team.crop_ids[4], "gender", "female", team.ids["ann_id"]))
        assert "row-level security" in refused(conn, LABEL, (team.crop_ids[4], "age", "child", team.ids["ann_id"]))


def test_reviewer_labels_any_attribute_but_only_under_own_row(team):
    with team.connect("rev") as conn:
        for attribute, value in (("age", "child"), ("height", "tall"), ("expression", "fear")):
            conn.execute(LABEL, (team.crop_ids[5], attribute, value, team.ids["rev"]))
        assert "row-level security" in refused(conn, LABEL, (team.crop_ids[5], "age", "elderly", team.ids["ann_age"]))
        assert "permission denied" in refused(conn, "DELETE FROM labels")


def test_maintainer_may_do_all_of_it(team):
    """``chief`` is a maintainer by group membership (not the tables' owner, not a superuser)."""
    crop = team.crop_ids[6]
    with team.connect("chief") as conn:
        label_id = conn.execute(LABEL + " RETURNING id", (crop, "height", "tall", team.ids["ann_age"])).fetchone()[0]
        conn.execute("UPDATE labels SET value = 'short' WHERE id = %s", (label_id,))
        conn.execute("INSERT INTO current_labels (crop_id, attribute, value, label_id) VALUES (%s, 'height', 'short', %s)",
                     (crop, label_id))
        conn.execute("DELETE FROM labels WHERE id = %s", (label_id,))  # cascades to its current label
        assert current(conn, crop, "height") is None
        conn.execute(LEASE, ("age", crop, team.ids["ann_id"]))
        conn.execute("DELETE FROM leases WHERE crop_id = %s", (crop,))
        conn.execute("INSERT INTO split_assignments (split, crop_id, subset) VALUES ('sec', %s, 'train')", (crop,))
        conn.execute("DELETE FROM split_assignments WHERE split = 'sec'")
        conn.execute("INSERT INTO releases (version, path, manifest_sha256, created_at) VALUES ('v0.0.1-sec', '/r', 'x', 0)")
        conn.execute("DELETE FROM releases WHERE version = 'v0.0.1-sec'")
        conn.execute("UPDATE annotators SET attribute = 'age' WHERE id = %s", (team.ids["ann_age"],))
        conn.execute("INSERT INTO identities (video_id, created_by, created_at) "
                     "SELECT video_id, NULL, 0 FROM crops WHERE id = %s", (crop,))


def test_a_login_without_membership_reads_nothing(team):
    """Disabling revokes the project's group role: the login can no longer even read this project."""
    import os
    import subprocess
    import sys

    def portrait(*args, user):
        env = {**os.environ, "PORTRAIT_DB_USER": user}
        proc = subprocess.run([sys.executable, "-m", "portrait_builder", *map(str, args)],
                              capture_output=True, text=True, timeout=120, env=env)
        return proc.returncode, proc.stdout, proc.stderr

    code, out, err = portrait("annotators", "disable", team.root, "rev", user=team.owner)
    assert code == 0 and "disabled" in out, err
    try:
        with team.connect("rev") as conn:
            assert "permission denied" in refused(conn, "SELECT count(*) FROM crops")
        with team.connect("chief") as conn:  # the reviewer's labels are still there
            assert conn.execute("SELECT count(*) FROM labels WHERE annotator_id = %s", (team.ids["rev"],)).fetchone()[0] == 3
    finally:
        code, out, err = portrait("annotators", "enable", team.root, "rev", user=team.owner)
        assert code == 0, err
    with team.connect("rev") as conn:
        assert conn.execute("SELECT count(*) FROM crops").fetchone()[0] == len(team.crop_ids)


def test_downgrade_removes_roles_and_upgrade_restores_them(tmp_path, pg):
    """Revision 0003 both ways on PostgreSQL: group roles, policies and the login columns come and go."""
    import uuid

    from sqlalchemy.engine import make_url

    from portrait_builder.store import Project, migrate
    from portrait_builder.store.security import group_role_names

    database = f"pb_sec_mig_{uuid.uuid4().hex[:8]}"
    groups = list(group_role_names(database).values())
    admin_connect = pg.admin_connect
    with admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        url = make_url(pg.url).set(database=database).render_as_string(hide_password=False)
        project = Project.init(tmp_path / "p", db_url=url)

        def state():
            with admin_connect(database) as conn:
                roles = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)", (groups,)).fetchone()[0]
                rls = conn.execute("SELECT count(*) FROM pg_class WHERE relrowsecurity AND relname IN "
                                   "('labels', 'current_labels', 'identities', 'leases', 'crops')").fetchone()[0]
                policies = conn.execute("SELECT count(*) FROM pg_policies").fetchone()[0]
                cols = conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'annotators' "
                                    "AND column_name IN ('db_login', 'disabled_at')").fetchone()[0]
            return roles, rls, policies, cols

        # 17 policies of revision 0003, 6 of 0004 (a character's static attributes, inherited labels, and
        # change points: read, maintain, mark own, unmark own)
        assert state() == (3, 5, 23, 2)
        migrate.downgrade(project.engine, "0002")
        assert state() == (0, 0, 0, 0)
        migrate.upgrade(project.engine)
        assert state() == (3, 5, 23, 2)
        project.close()
    finally:
        pg.drop_database_and_roles(database, groups)


def test_sqlite_upgrade_and_downgrade_only_touch_the_columns(tmp_path):
    from sqlalchemy import inspect

    from portrait_builder.store import Project, migrate

    project = Project.init(tmp_path / "p")
    assert {"db_login", "disabled_at"} <= {c["name"] for c in inspect(project.engine).get_columns("annotators")}
    migrate.downgrade(project.engine, "0002")
    assert not {"db_login", "disabled_at"} & {c["name"] for c in inspect(project.engine).get_columns("annotators")}
    migrate.upgrade(project.engine)
    assert migrate.current_revision(project.engine) == migrate.head_revision()


def test_passwords_reach_the_server_only_as_scram_verifiers(team, pg):
    """Each login's password lives on the server as a SCRAM verifier (computed on the client, so the
    password is never in a statement or the server log); the project folder holds none."""
    with pg.admin_connect() as conn:
        rows = conn.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)",
                            (list(team.logins.values()),)).fetchall()
    assert len(rows) == len(team.logins)
    assert all(pw.startswith("SCRAM-SHA-256$") for _, pw in rows)
    text = "".join(p.read_text(errors="replace") for p in team.root.rglob("*.yaml"))
    assert "pw-" not in text and "password" not in text


def test_a_later_revision_grants_its_new_writer_columns(team, pg):
    """A column a later revision adds to labels is refused to writers until granted with the helper."""
    from sqlalchemy import create_engine

    from portrait_builder.store.engine import normalise_url
    from portrait_builder.store.security import grant_writer_columns

    owner = create_engine(normalise_url(pg.login_url(team.owner, team.database)))
    with owner.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE labels ADD COLUMN provenance_test varchar(16)")
    sql = LABEL.replace("source, created_at)", "source, created_at, provenance_test)").replace("0)", "0, 'clicked')")
    args = (team.crop_ids[7], "age", "child", team.ids["ann_age"])
    try:
        with team.connect("ann_age") as conn:
            assert "permission denied" in refused(conn, sql, args)
        with owner.begin() as conn:
            grant_writer_columns(conn, "labels", ["provenance_test"])
        with team.connect("ann_age") as conn:
            conn.execute(sql, args)
    finally:
        with owner.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE labels DROP COLUMN provenance_test")
        owner.dispose()


def test_counts_follow_an_annotators_labels_but_nobody_writes_them_directly(team):
    """store_counts (revision 0005) moves with an annotator's label through portrait_set_current (its
    triggers run with the owner's rights), while no login, maintainers included, may write it."""
    crop = team.crop_ids[5]
    counter = "SELECT coalesce(sum(n), 0) FROM store_counts WHERE counter = 'labelled:age'"
    with team.connect("ann_age") as conn:
        before = conn.execute(counter).fetchone()[0]
        had = current(conn, crop, "age")
        label_id = conn.execute(LABEL + " RETURNING id", (crop, "age", "teenager", team.ids["ann_age"])).fetchone()[0]
        conn.execute("SELECT portrait_set_current(%s)", (label_id,))
        assert conn.execute(counter).fetchone()[0] == before + (had is None or had[0] is None)
        for sql in ("UPDATE store_counts SET n = n + 1", "DELETE FROM store_counts", "TRUNCATE store_counts",
                    "INSERT INTO store_counts (counter, slot, n) VALUES ('labelled:age', 99, 1000)"):
            assert "permission denied" in refused(conn, sql)
    with team.connect("chief") as conn:
        assert "permission denied" in refused(conn, "UPDATE store_counts SET n = 0")
        kept = dict(conn.execute("SELECT counter, sum(n) FROM store_counts GROUP BY counter").fetchall())
        real = dict(conn.execute("SELECT 'labelled:' || attribute, count(*) FROM current_labels "
                                 "WHERE value IS NOT NULL GROUP BY attribute").fetchall())
        real["crops"] = conn.execute("SELECT count(*) FROM crops").fetchone()[0]
        assert {k: v for k, v in kept.items() if v} == real
