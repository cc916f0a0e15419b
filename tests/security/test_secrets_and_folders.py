"""No secret in the project folder; owner-only SQLite projects; a per-machine crops folder."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys

import pytest
import yaml

from portrait_builder.errors import UserError
from portrait_builder.store import Project
from portrait_builder.store.security import mask_url, strip_password, url_password

SECRET = "Zq7-not-for-git"


def run(*args, env=None, stdin=None):
    proc = subprocess.run([sys.executable, "-m", "portrait_builder", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})}, input=stdin)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("url", [
    f"postgresql://ann:{SECRET}@db.example:5432/team",
    f"postgresql://ann@db.example/team?password={SECRET}&sslmode=require",
])
def test_url_helpers_find_strip_and_mask_the_password(url):
    assert url_password(url) == SECRET
    assert SECRET not in mask_url(url) and "***" in mask_url(url)
    clean = strip_password(url)
    assert url_password(clean) is None and "db.example" in clean and "ann" in clean
    assert url_password("postgresql://ann@db.example/team") is None and url_password("sqlite:///x.db") is None


def test_init_refuses_a_password_and_names_where_it_belongs(tmp_path):
    with pytest.raises(UserError) as info:
        Project.init(tmp_path / "p", db_url=f"postgresql://ann:{SECRET}@127.0.0.1:9/team")
    message = str(info.value)
    assert SECRET not in message and "\n" not in message
    assert "~/.pgpass" in message and "service file" in message and "PGPASSWORD" in message
    assert not (tmp_path / "p").exists()


def test_sqlite_project_is_owner_only(tmp_path):
    project = Project.init(tmp_path / "solo")
    root = project.root
    from portrait_builder.annotation import add_annotator

    add_annotator(project, "me", "annotator", "age")  # a write: the WAL file exists now
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [root, root / "crops", *root.glob("store.sqlite*"),
                                                              root / "portrait.yaml"]}
    assert modes.pop("solo") == 0o700 and modes.pop("crops") == 0o700
    assert "store.sqlite-wal" in modes  # SQLite gives its WAL the database file's mode
    assert set(modes.values()) == {0o600}, modes
    project.close()


def test_crop_root_from_the_environment(tmp_path, monkeypatch):
    from portrait_builder.annotation import AnnotationService, add_annotator
    from portrait_builder.testing.annotation_sample import populate_sample

    project = Project.init(tmp_path / "p")
    populate_sample(project, [], max_tracks=1, rendered_videos=1)
    add_annotator(project, "me", "annotator", "age")
    stored = sorted(p.relative_to(project.crop_root) for p in project.crop_root.rglob("*.jpg"))
    mount = tmp_path / "mnt" / "team-crops"
    (tmp_path / "p" / "crops").rename(tmp_path / "moved")
    mount.parent.mkdir()
    (tmp_path / "moved").rename(mount)
    monkeypatch.setenv("PORTRAIT_CROP_ROOT", str(mount))
    reopened = Project.open(project.root)
    assert reopened.check_crop_root() == mount
    with AnnotationService(reopened, "me") as svc:
        item = svc.next_item()
        assert item.image_path == mount / item.path and item.image_path.is_file()
        assert not os.path.isabs(item.path) and item.path in {p.as_posix() for p in stored}  # the store keeps relative paths
    monkeypatch.setenv("PORTRAIT_CROP_ROOT", str(tmp_path / "unmounted"))
    with pytest.raises(UserError, match="is missing: is the shared drive mounted"):
        Project.open(project.root).check_crop_root()
    for p in (project, reopened):
        p.close()


def test_annotate_with_an_unmounted_crops_folder_is_one_line(tmp_path):
    project = Project.init(tmp_path / "p")
    from portrait_builder.annotation import add_annotator

    add_annotator(project, "me", "annotator", "age")
    project.close()
    code, out, err = run("annotate", tmp_path / "p", "--annotator", "me",
                         env={"PORTRAIT_CROP_ROOT": str(tmp_path / "nowhere"), "QT_QPA_PLATFORM": "offscreen"})
    assert code == 2 and err.count("\n") == 1 and "the crops folder" in err and "PORTRAIT_CROP_ROOT" in err, err


def test_db_login_needs_postgresql(tmp_path):
    Project.init(tmp_path / "p").close()
    code, out, err = run("annotators", "add", tmp_path / "p", "ann", "--attribute", "age", "--db-login",
                         "--generate-password")
    assert code == 2 and err.count("\n") == 1 and "need a PostgreSQL store" in err


@pytest.mark.slow  # several `portrait` subprocesses
def test_doctor_flags_and_removes_a_password(tmp_path, pg, caplog):
    """A portrait.yaml written before this check (or by hand) with a password: doctor flags it, --repair removes it,
    and the password appears in no output. (The test server trusts local logins, so the old URL still opens.)"""
    import uuid

    from sqlalchemy.engine import make_url

    database = f"pb_sec_doc_{uuid.uuid4().hex[:8]}"
    from portrait_builder.store.security import group_role_names

    with pg.admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        url = make_url(pg.url).set(database=database)
        project = Project.init(tmp_path / "p", db_url=url.render_as_string(hide_password=False))
        project.close()
        cfg = tmp_path / "p" / "portrait.yaml"
        data = yaml.safe_load(cfg.read_text())
        data["db_url"] = url.set(password=SECRET).render_as_string(hide_password=False)
        cfg.write_text(yaml.safe_dump(data))
        with caplog.at_level(logging.WARNING):
            Project.open(tmp_path / "p").close()
        assert "holds a database password" in caplog.text and SECRET not in caplog.text

        code, out, err = run("doctor", tmp_path / "p")
        assert code == 1 and "holds a database password" in out and SECRET not in out + err
        code, out, err = run("status", tmp_path / "p")
        assert code == 0 and SECRET not in out + err
        code, out, err = run("doctor", tmp_path / "p", "--repair")
        assert code == 0 and "database password removed" in out and SECRET not in out + err
        assert SECRET not in cfg.read_text()
        assert yaml.safe_load(cfg.read_text())["db_url"] == url.render_as_string(hide_password=False)
        code, out, err = run("doctor", tmp_path / "p")
        assert code == 0 and "password" not in out
    finally:
        pg.drop_database_and_roles(database, list(group_role_names(database).values()))


@pytest.mark.slow  # several `portrait` subprocesses
def test_add_login_reads_the_password_from_stdin_and_never_stores_it(tmp_path, pg):
    import uuid

    from portrait_builder.store.security import group_role_names

    suffix = uuid.uuid4().hex[:8]
    database, login, other = f"pb_sec_cli_{suffix}", f"pb_sec_cli_ann_{suffix}", f"pb_sec_cli_gen_{suffix}"
    with pg.admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        from sqlalchemy.engine import make_url

        url = make_url(pg.url).set(database=database).render_as_string(hide_password=False)
        assert run("init", tmp_path / "p", "--db", url)[0] == 0
        code, out, err = run("annotators", "add", tmp_path / "p", "Ann", "--attribute", "age", "--db-login",
                             "--login", login, "--password-stdin", stdin=SECRET + "\n")
        assert code == 0 and f"database login {login} (created)" in out and SECRET not in out + err, err
        code, out, err = run("annotators", "add", tmp_path / "p", "Gen", "--role", "reviewer", "--login", other,
                             "--generate-password")
        assert code == 0, err
        generated = out.split("(shown only now): ")[1].strip()
        assert len(generated) >= 20
        code, out, err = run("annotators", "add", tmp_path / "p", "Nobody", "--attribute", "age", "--db-login",
                             "--login", f"pb_sec_cli_x_{suffix}", stdin="")
        assert code == 2 and "--password-stdin or --generate-password" in err  # no terminal, no silent default
        everything = b"".join(p.read_bytes() for p in (tmp_path / "p").rglob("*") if p.is_file())
        assert SECRET.encode() not in everything and generated.encode() not in everything
        with pg.admin_connect() as conn:
            rows = dict(conn.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)",
                                     ([login, other],)).fetchall())
        assert rows.keys() == {login, other} and all(v.startswith("SCRAM-SHA-256$") for v in rows.values())
        code, out, err = run("annotators", "list", tmp_path / "p")
        assert any(line.split()[:4] == ["Ann", "annotator", "age", login] for line in out.splitlines()), out
    finally:
        pg.drop_database_and_roles(database, [login, other, *group_role_names(database).values()])


def test_doctor_restricts_a_sqlite_project_others_can_read(tmp_path, caplog):
    from portrait_builder.ingest.doctor import doctor

    project = Project.init(tmp_path / "old")
    (tmp_path / "old" / "crops").chmod(0o755)  # as projects made before init restricted them
    (tmp_path / "old" / "store.sqlite").chmod(0o644)
    with caplog.at_level(logging.WARNING):
        report = doctor(project)
    assert sorted(report["readable_by_others"]) == sorted([str(tmp_path / "old" / "crops"),
                                                           str(tmp_path / "old" / "store.sqlite")])
    assert "can be read by other users" in caplog.text
    assert doctor(project, repair=True)["readable_by_others"] == []
    assert stat.S_IMODE((tmp_path / "old" / "crops").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "old" / "store.sqlite").stat().st_mode) == 0o600
    assert doctor(project)["readable_by_others"] == []
    project.close()
