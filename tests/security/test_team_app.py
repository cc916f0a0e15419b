"""The app and the CLI on a team store: the annotator is the login; a database refusal is one clear line."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt creates the QApplication

import pytest  # noqa: E402

from portrait_builder.errors import UserError  # noqa: E402


def _cli(capsys, *args):
    from portrait_builder.cli import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("portrait: error: "), err
    return lines[0]


def test_the_annotator_is_the_login(team, as_login):
    from portrait_builder.annotation import AnnotationService

    project = as_login("ann_age")
    with AnnotationService(project, None) as svc:
        assert (svc.annotator.name, svc.annotator.db_login, svc.attribute) == ("ann_age", team.logins["ann_age"], "age")
    with AnnotationService(project, "ann_age") as svc:  # a name that agrees is fine
        assert svc.annotator.id == team.ids["ann_age"]
    with pytest.raises(UserError, match="which is annotator 'ann_age', not 'ann_id'"):
        AnnotationService(project, "ann_id")
    # the owner (bypasses row-level security anyway) may act for a named annotator, e.g. in scripts
    owner = as_login(team.owner)
    with AnnotationService(owner, "ann_id") as svc:
        assert svc.annotator.id == team.ids["ann_id"]
    with pytest.raises(UserError, match="name the annotator"):
        AnnotationService(owner, None)


def test_cli_checks_annotator_against_login(team, as_login, capsys, monkeypatch):
    as_login("ann_age")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    code, _, err = _cli(capsys, "annotate", team.root, "--annotator", "ann_id")
    assert code == 2 and "connected as login" in _one_line(err)
    code, _, err = _cli(capsys, "annotate", team.root)  # no name: the login decides, then the display check
    assert code == 2 and "no display" in _one_line(err)


def test_cli_turns_refusals_into_one_line(team, as_login, capsys):
    as_login("ann_age")
    login = team.logins["ann_age"]
    cases = [
        ("annotators", "add", team.root, "mallory", "--role", "maintainer"),
        ("annotators", "disable", team.root, "ann_id"),
        ("split", team.root, "--seed", "1"),
    ]
    for args in cases:
        code, out, err = _cli(capsys, *args)
        line = _one_line(err)
        assert code == 2 and f"the database refused this for login {login}" in line, line
        assert "permission denied" in line or "row-level security" in line
    code, out, _ = _cli(capsys, "status", team.root)  # reading is allowed, and says who you are
    assert code == 0 and f"login {login})" in out
    as_login(team.owner)  # nothing was written
    code, out, _ = _cli(capsys, "annotators", "list", team.root)
    assert "mallory" not in out and "active" in out.splitlines()[2]


def test_service_refusal_is_one_line(team, as_login):
    """The service's own check passes (its view of the annotator is stale), the database refuses."""
    from sqlalchemy import text

    from portrait_builder.annotation import AnnotationService
    from portrait_builder.store.project import StorePermissionError

    project = as_login("ann_age")
    svc = AnnotationService(project, None)
    item = svc.next_item()
    with as_login(team.owner).write() as s:  # a maintainer reassigns ann_age while the app is open
        s.execute(text("UPDATE annotators SET attribute = 'height' WHERE name = 'ann_age'"))
    try:
        with pytest.raises(StorePermissionError) as info:
            svc.set_label(item.id, "age", "elderly")
        message = str(info.value)
        assert "\n" not in message and "row-level security" in message and team.logins["ann_age"] in message
        assert svc.get_item(item.id).labels.get("age") is None
    finally:
        with as_login(team.owner).write() as s:
            s.execute(text("UPDATE annotators SET attribute = 'age' WHERE name = 'ann_age'"))
        svc.close()


def test_app_shows_a_refusal_in_the_status_bar(team, as_login, qtbot):
    from PySide6.QtCore import Qt
    from sqlalchemy import text

    from annotator_gui.app import AnnotationWindow
    from portrait_builder.annotation import AnnotationService

    project = as_login("ann_age")
    window = AnnotationWindow(AnnotationService(project, None))
    qtbot.addWidget(window)
    window.show()
    view = window.view
    qtbot.keyClick(view, Qt.Key.Key_1)  # a first label goes through: there is something to undo
    shown = view.item.id
    messages = []
    view.message.connect(messages.append)
    with as_login(team.owner).write() as s:
        s.execute(text("UPDATE annotators SET attribute = 'height' WHERE name = 'ann_age'"))
    try:
        qtbot.keyClick(view, Qt.Key.Key_1)  # the first age value
        assert view.item.id == shown  # not labelled, not moved on
        assert len(messages) == 1 and "the database refused this" in messages[0] and "\n" not in messages[0]
        assert window.statusBar().currentMessage() == messages[0]
        qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # the undo is a label too: refused
        assert len(messages) == 2 and "row-level security" in messages[1] and view.item.id == shown
    finally:
        with as_login(team.owner).write() as s:
            s.execute(text("UPDATE annotators SET attribute = 'age' WHERE name = 'ann_age'"))
        window.close()


def test_a_login_without_rights_on_the_store_gets_one_line(team, pg, capsys, monkeypatch):
    """A login that is no member of the project's groups cannot even open it: one line, no traceback."""
    import uuid

    stranger = f"pb_sec_stranger_{uuid.uuid4().hex[:8]}"
    with pg.admin_connect() as conn:
        conn.execute(f'CREATE ROLE "{stranger}" LOGIN')
    try:
        monkeypatch.setenv("PORTRAIT_DB_USER", stranger)
        code, _, err = _cli(capsys, "status", team.root)
        line = _one_line(err)
        assert code == 2 and f"refused this for login {stranger}: permission denied" in line, line
    finally:
        with pg.admin_connect() as conn:
            conn.execute(f'DROP ROLE "{stranger}"')


def test_identity_annotator_works_through_the_service_as_own_login(team, as_login):
    """The identity view's writes (new character, exemplar click, rename, undo) pass the policies."""
    from portrait_builder.annotation import AnnotationService

    project = as_login("ann_id")
    with AnnotationService(project, None) as svc:
        first = svc.next_item()
        celia = svc.new_identity(first.id, "female", "Celia")
        second = svc.next_item()
        svc.assign_identity(second.id, celia.id)
        labels = svc.get_item(second.id).labels
        assert (labels["identity"], labels["gender"]) == (str(celia.id), "female")
        assert svc.rename_identity(celia.id, "Celia B").name == "Celia B"
        undone = svc.undo()
        assert second.id in undone.crop_ids and svc.get_item(second.id).labels.get("identity") is None
    with team.connect("chief") as conn:
        assert conn.execute("SELECT created_by FROM identities WHERE id = %s", (celia.id,)).fetchone() == (team.ids["ann_id"],)


def test_an_existing_store_upgraded_to_roles_gives_its_annotators_logins(tmp_path, pg, capsys):
    """A team store from before revision 0003 (annotators, no logins): upgrade, then `annotators login`."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from portrait_builder.store import Project, migrate
    from portrait_builder.store.security import group_role_names

    tag = uuid.uuid4().hex[:8]
    database, login = f"pb_sec_up_{tag}", f"pb_sec_up_ana_{tag}"
    with pg.admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        url = make_url(pg.url).set(database=database).render_as_string(hide_password=False)
        project = Project.init(tmp_path / "p", db_url=url)
        migrate.downgrade(project.engine, "0002")
        with project.engine.begin() as conn:
            conn.execute(text("INSERT INTO annotators (name, role, attribute, created_at) VALUES ('Ana', 'annotator', 'age', 0)"))
        code, _, err = _cli(capsys, "upgrade", tmp_path / "p")
        assert code == 0, err
        code, out, err = _cli(capsys, "annotators", "login", tmp_path / "p", "Ana", "--login", login, "--generate-password")
        assert code == 0 and f"Ana (annotator) now connects as {login}" in out and "(shown only now)" in out, err
        code, _, err = _cli(capsys, "annotators", "login", tmp_path / "p", "Ana", "--login", login)
        assert code == 2 and "already has the login" in _one_line(err)
        with pg.admin_connect(database) as conn:
            admin_rights = conn.execute("SELECT portrait_may_write('age'), portrait_may_write('height')").fetchone()
        assert admin_rights == (False, False)  # the administrator has no annotator row
        import psycopg

        with psycopg.connect(pg.login_url(login, database), autocommit=True) as conn:
            assert conn.execute("SELECT portrait_may_write('age'), portrait_may_write('height')").fetchone() == (True, False)
        project.close()
    finally:
        pg.drop_database_and_roles(database, [login, *group_role_names(database).values()])
