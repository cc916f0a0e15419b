"""``portrait_builder`` (every module, found by walking the package) never imports PySide6; the
annotator_gui package holds no SQL."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import importlib, json, pkgutil, sys
import portrait_builder
names = ["portrait_builder"] + sorted(
    m.name for m in pkgutil.walk_packages(portrait_builder.__path__, "portrait_builder.")
    if not m.name.endswith("__main__")
)
qt_after, failed = None, {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:  # reported, so a broken module cannot hide a Qt import
        failed[name] = f"{type(exc).__name__}: {exc}"
    if qt_after is None and any(m == "PySide6" or m.startswith("PySide6.") for m in sys.modules):
        qt_after = name
print(json.dumps({"modules": names, "qt_after": qt_after, "failed": failed}))
"""


def test_portrait_builder_never_imports_pyside6():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "portrait_builder.annotation.service" in result["modules"]
    assert "portrait_builder.cli.annotate" in result["modules"]
    assert result["qt_after"] is None, f"PySide6 imported by {result['qt_after']}"
    # our own modules must import; other areas' import failures are reported by their own tests
    ours = {k: v for k, v in result["failed"].items() if ".annotation" in k or k.endswith("cli.annotate")}
    assert ours == {}


def test_annotator_gui_has_no_sql():
    for path in (REPO / "annotator_gui").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import)\s+sqlalchemy", text, re.M), path
        assert not re.search(r"\b(SELECT|INSERT|UPDATE|DELETE)\s+(\*|INTO|FROM|\w+\s+SET)", text), path
        assert "portrait_builder.store" not in text, path
