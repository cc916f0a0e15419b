"""`portrait annotators add|list` and `portrait annotate` errors, through the real CLI entry point."""

from __future__ import annotations

from portrait_builder.cli import main
from portrait_builder.store import Project


def test_annotators_add_and_list(tmp_path, capsys):
    root = tmp_path / "p"
    Project.init(root).close()
    assert main(["annotators", "add", str(root), "alice", "--attribute", "identity"]) == 0
    assert main(["annotators", "add", str(root), "rita", "--role", "reviewer"]) == 0
    assert main(["annotators", "add", str(root), "bob"]) == 2
    assert "needs an assigned attribute" in capsys.readouterr().err
    assert main(["annotators", "add", str(root), "bob", "--role", "chief", "--attribute", "age"]) == 2
    assert "valid roles: annotator, reviewer, maintainer" in capsys.readouterr().err
    assert main(["annotators", "list", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["alice", "annotator", "identity", "-", "active"]  # no database login on SQLite
    assert out[2].split() == ["rita", "reviewer", "-", "-", "active"]


def test_annotate_errors_are_one_line(tmp_path, capsys, monkeypatch):
    root = tmp_path / "p"
    Project.init(root).close()
    assert main(["annotators", "add", str(root), "alice", "--attribute", "age"]) == 0
    capsys.readouterr()
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)

    def run(*args):
        code = main(list(args))
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err  # one line, no traceback
        return code, err.strip()

    code, err = run("annotate", str(root), "--annotator", "nobody")
    assert code == 2 and "no annotator 'nobody'" in err
    code, err = run("annotate", str(root), "--annotator", "alice", "--attribute", "expression")
    assert code == 2 and "may not open the 'expression' queue" in err
    code, err = run("annotate", str(root), "--annotator", "alice", "--review")
    assert code == 2 and "needs a reviewer or maintainer" in err
    code, err = run("annotate", str(root), "--annotator", "alice")
    assert code == 2 and err == "portrait: error: no display: set DISPLAY (or run under `xvfb-run`), or QT_QPA_PLATFORM=offscreen"
