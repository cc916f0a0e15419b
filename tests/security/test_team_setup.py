"""docs/team.md is checked: its steps, as docs/team_setup.sh runs them, against the test PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "team_setup.sh"


@pytest.mark.slow
def test_team_setup_script(tmp_path, pg):
    if shutil.which("psql") is None and not list(Path("/usr/lib/postgresql").glob("*/bin/psql")):
        pytest.skip("psql is not installed")
    env = {**os.environ, "PORTRAIT": f"{sys.executable} -m portrait_builder", "TEAM_TAG": uuid.uuid4().hex[:10]}
    proc = subprocess.run(["bash", str(SCRIPT), pg.url, str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("team setup OK")
    with pg.admin_connect() as conn:  # the script removed what it created (roles are cluster-wide)
        left = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE %s", (f"%{env['TEAM_TAG']}%",)).fetchone()[0]
    assert left == 0
