"""The README demo, end to end on a smaller configuration (same stages, fewer frames)."""

import json
import math

import pytest

from portrait_builder.demo import DemoConfig, prepare, run_demo
from portrait_builder.errors import UserError
from portrait_builder.release import verify_release


@pytest.mark.slow
def test_demo_runs_the_whole_chain(tmp_path):
    ctx = run_demo(tmp_path / "demo", DemoConfig(frames=80, people=4, epochs=1))
    status = json.loads((tmp_path / "demo" / "status.json").read_text())
    assert status["videos"] == 2 and status["crops"] > 50 and status["identities"] >= 6
    # the synthetic annotators labelled (almost) every crop, through the service
    assert status["attributes"]["age"]["labelled"] >= 0.8 * status["crops"]
    assert status["attributes"]["identity"]["labelled"] == status["attributes"]["gender"]["labelled"]
    assert verify_release(ctx["release"]) == []
    row = json.loads((tmp_path / "demo" / "evaluation.json").read_text())
    assert row["num_query"] > 0 and math.isfinite(row["PIQ"]) and 0 < row["PIQ"] <= 1


def test_demo_folder_is_replaced_but_a_foreign_folder_is_refused(tmp_path):
    prepare(tmp_path / "demo")
    (tmp_path / "demo" / "old.txt").write_text("x")
    prepare(tmp_path / "demo")  # an earlier demo's folder is replaced
    assert not (tmp_path / "demo" / "old.txt").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep")
    with pytest.raises(UserError, match="not made by `portrait demo`"):
        run_demo(tmp_path / "mine")
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep"
