"""``portrait train-detector`` and ``portrait export-mot``: help, and user mistakes as one line with exit 2."""

from __future__ import annotations

import pytest

from portrait_builder.cli import main


@pytest.mark.parametrize("command", ["train-detector", "export-mot"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "JDE" in capsys.readouterr().out


def test_user_mistakes_are_one_line(tmp_path, capsys):
    cases = [
        (["train-detector", str(tmp_path / "nope"), "--out", str(tmp_path / "run"), "--arch", "tiny-256x160"],
         "training data not found"),
        (["train-detector", str(tmp_path), "--out", str(tmp_path / "run"), "--size", "640x480"],
         "unknown JDE size/arch '640x480'"),
        (["train-detector", str(tmp_path), "--out", str(tmp_path / "run"), "--size", "tiny-100x100"],
         "multiples of 32"),
        (["train-detector", str(tmp_path), "--out", str(tmp_path / "run"), "--arch", "tiny-256x160"],
         "no list file and no images"),
        (["export-mot", str(tmp_path / "noproj"), str(tmp_path / "out")], "no project at"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_export_of_an_empty_project(tmp_path, capsys):
    assert main(["init", str(tmp_path / "p")]) == 0
    assert main(["export-mot", str(tmp_path / "p"), str(tmp_path / "out")]) == 2
    assert "has no crops to export" in capsys.readouterr().err
