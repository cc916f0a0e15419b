"""Installs that fit each user: an annotator's laptop installs the core and the app
(``pip install "portrait-builder[app]"``) without PyTorch, Ray or onnxruntime.

Two checks: setup.cfg's core and ``app`` extra name none of the pipeline's heavy packages, and the app
runs (a real window, a real label in a real store) in a process where every module the ``pipeline``
extra provides fails to import, as it would in an environment that never installed them.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "timm", "kornia", "ray", "onnxruntime", "onnx", "opencv-python-headless")


def _names(block: str) -> list[str]:
    out = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(re.match(r"[A-Za-z0-9_.\-]+", line).group(0).lower())
    return out


def _cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def test_core_and_app_extra_leave_the_pipeline_out():
    cfg = _cfg()
    core = _names(cfg["options"]["install_requires"])
    app = _names(cfg["options.extras_require"]["app"])
    pipeline = _names(cfg["options.extras_require"]["pipeline"])
    assert "pyside6" in app and "sqlalchemy" in core
    assert set(HEAVY) <= set(pipeline)
    assert not set(HEAVY) & set(core + app), "the app install would pull in the pipeline"
    assert "portrait-builder[app,pipeline]" in cfg["options.extras_require"]["all"]


def _pipeline_modules() -> list[str]:
    """Top-level modules the pipeline extra's distributions install (only the extra's own packages, never
    one the core or the app also needs)."""
    cfg = _cfg()
    pipeline = _names(cfg["options.extras_require"]["pipeline"])
    keep = set()
    for name in pipeline:
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        for f in dist.files or ():
            top = f.parts[0] if len(f.parts) > 1 else f.name.split(".")[0]
            if not top.endswith((".dist-info", ".data", ".libs")) and top not in ("..", "__pycache__", "bin"):
                keep.add(top)
    return sorted(keep)


SCRIPT = textwrap.dedent("""
    import importlib.abc, json, sys
    BLOCKED = set(json.loads(sys.argv[1]))

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (not in the app install)", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    try:
        import torch  # noqa: F401
        raise SystemExit("the import blocker let torch through")
    except ModuleNotFoundError:
        pass
    from pathlib import Path

    from PySide6.QtWidgets import QApplication

    from annotator_gui.app import AnnotationWindow
    from portrait_builder.annotation import AnnotationService, add_annotator
    from portrait_builder.cli import main
    from portrait_builder.store import Project, current_labels
    from portrait_builder.testing.annotation_sample import populate_sample

    app = QApplication([])
    root = Path(sys.argv[2])
    project = Project.init(root / "proj")
    crops = populate_sample(project, [], max_tracks=2)
    add_annotator(project, "ann_age", "annotator", "age")
    window = AnnotationWindow(AnnotationService(project, "ann_age", None))
    window.show()
    app.processEvents()
    service = window.service
    item = service.next_item()
    service.set_label([item.id], "age", project.taxonomy.attribute("age").value_names[0])
    with project.session() as s:
        stored = current_labels(s, [item.id])
    window.close()
    assert main(["status", str(root / "proj")]) == 0  # the command line works too
    # a pipeline command says what to install, in one line
    assert main(["split", str(root / "proj"), "--seed", "0"]) == 2
    loaded = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
    print(json.dumps({"crops": len(crops), "stored": stored[item.id], "loaded": loaded}))
""")


def test_the_app_runs_without_the_pipeline(tmp_path):
    blocked = _pipeline_modules()
    assert {"torch", "cv2", "ray", "onnxruntime"} <= set(blocked)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(blocked), str(tmp_path)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'portrait split` needs the full install' in out.stderr and "Traceback" not in out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["crops"] > 0 and "age" in result["stored"]
    assert result["loaded"] == []
