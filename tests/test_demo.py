import json

import pytest

from portrait_builder.demo import run_demo
from portrait_builder.errors import UserError


def test_demo_runs_and_refuses_foreign_folder(tmp_path):
    ctx = run_demo(tmp_path / "demo")
    status = json.loads((tmp_path / "demo" / "status.json").read_text())
    assert status["videos"] == ctx["project"].status()["videos"]
    run_demo(tmp_path / "demo")  # a demo folder is replaced on a re-run
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep")
    with pytest.raises(UserError, match="not made by `portrait demo`"):
        run_demo(tmp_path / "mine")
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep"
