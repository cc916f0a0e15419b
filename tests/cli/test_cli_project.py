"""`portrait init|upgrade|status` through the real console entry point."""

import json
import subprocess
import sys

import pytest
import yaml

from portrait_builder.cli import main


def run(*args):
    """Run the installed `portrait` in a subprocess: what a user sees (stdout, stderr, exit code)."""
    proc = subprocess.run([sys.executable, "-m", "portrait_builder", *map(str, args)], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_init_status_json(tmp_path):
    proj = tmp_path / "movie-project"
    code, out, err = run("init", proj)
    assert code == 0, err
    assert (proj / "portrait.yaml").is_file() and (proj / "crops").is_dir() and (proj / "store.sqlite").is_file()
    code, out, err = run("status", proj, "--json")
    assert code == 0, err
    status = json.loads(out)
    assert (status["videos"], status["tracks"], status["crops"], status["identities"]) == (0, 0, 0, 0)
    assert set(status["attributes"]) == {"identity", "gender", "age", "physique", "height", "body_posture", "arm_posture", "expression"}
    code, out, err = run("status", proj)
    assert code == 0 and "expression" in out and "labelled" in out
    code, out, err = run("upgrade", proj)
    assert code == 0 and "store at" in out


def _commands(parser, prefix=()):
    """Every command path, nested ones included (``release verify``, ``annotators add``...)."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _commands(sub, (*prefix, name))


def test_help_on_every_subcommand(capsys):
    from portrait_builder.cli import build_parser

    paths = list(_commands(build_parser()))
    names = {p[0] for p in paths}
    assert {"init", "upgrade", "status", "ingest", "annotate", "release", "train", "evaluate", "demo"} <= names
    assert ("labels", "import") in paths and ("annotators", "add") in paths
    for path in paths:
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: portrait " + " ".join(path)), (path, out[:200])


@pytest.mark.parametrize("form", ["verify", "diff"])
def test_release_forms_have_their_own_help(form, capsys):
    """``release verify DIR`` / ``release diff A B`` share the release parser; -h names the form."""
    with pytest.raises(SystemExit) as exit_info:
        main(["release", form, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: portrait release {form} "), out[:200]
    assert "--version" not in out


def _one_line_error(code, out, err, needle):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("portrait: error: ") and needle in lines[0], lines[0]


def test_missing_project(tmp_path):
    _one_line_error(*run("status", tmp_path / "nope"), "no project at")


def test_verify_of_a_missing_release_folder(tmp_path):
    _one_line_error(*run("release", "verify", tmp_path / "nope"), "no release folder at")
    _one_line_error(*run("release", "verify", tmp_path), "is not a release (no manifest.json)")


def test_unreachable_database_url(tmp_path):
    # port 9 on localhost: nothing listens there, the connection is refused at once
    _one_line_error(*run("init", tmp_path / "p", "--db", "postgresql://u@127.0.0.1:9/x"), "cannot open database")
    assert not (tmp_path / "p" / "portrait.yaml").exists()
    # a password in the URL is refused before anything is written, and never echoed
    code, out, err = run("init", tmp_path / "p", "--db", "postgresql://u:s3cret@127.0.0.1:9/x")
    _one_line_error(code, out, err, "~/.pgpass")
    assert "s3cret" not in err + out and not (tmp_path / "p").exists()
    _one_line_error(*run("init", tmp_path / "q", "--db", "mysql://h/x"), "unsupported database")


def test_bad_taxonomy_file(tmp_path):
    bad = tmp_path / "tax.yaml"
    bad.write_text(yaml.safe_dump({"schema_version": 1, "name": "x", "attributes": [{"name": "Hat"}]}))
    _one_line_error(*run("init", tmp_path / "p", "--taxonomy", bad), "taxonomy file")
    assert not (tmp_path / "p").exists()
    _one_line_error(*run("init", tmp_path / "p", "--taxonomy", tmp_path / "missing.yaml"), "taxonomy file not found")


def test_init_twice_refused_and_store_kept(tmp_path):
    assert run("init", tmp_path / "p")[0] == 0
    before = (tmp_path / "p" / "portrait.yaml").read_text()
    _one_line_error(*run("init", tmp_path / "p"), "already a project")
    assert (tmp_path / "p" / "portrait.yaml").read_text() == before


def test_custom_taxonomy_project(tmp_path):
    tax = tmp_path / "tax.yaml"
    tax.write_text(yaml.safe_dump({"schema_version": 1, "name": "hats", "attributes": [
        {"name": "hat", "aspect": "appearance", "kind": "single",
         "values": [{"name": "yes", "hotkey": "y"}, {"name": "unsure", "hotkey": "0", "unsure": True}]}]}))
    assert run("init", tmp_path / "p", "--taxonomy", tax)[0] == 0
    code, out, _ = run("status", tmp_path / "p", "--json")
    assert code == 0 and list(json.loads(out)["attributes"]) == ["hat"]
