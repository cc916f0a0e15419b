"""Every package the code imports is declared: CI installs from setup.cfg alone into a new environment,
so an import that only a developer's machine satisfies must fail here, not on a user's machine.

Reference: the import statements themselves (``ast``), mapped to distributions by
``importlib.metadata.packages_distributions()``, against the names in setup.cfg's ``install_requires``
and extras.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib.metadata import distributions, packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("portrait_builder", "annotator_gui", "tests", "benchmarks", "docs")

# Imported only inside a guard that turns their absence into one UserError line naming the install
# command: optional integrations with other training frameworks, never installed by the project.
OPTIONAL = {
    "torchreid": "portrait_builder/integrations/reid.py registers releases with torchreid when it is installed",
    "fastreid": "portrait_builder/integrations/reid.py registers releases with fast-reid when it is installed",
}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_requirements() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    for _, value in cfg["options.extras_require"].items():
        lines += value.splitlines()
    names = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(_canonical(re.match(r"[A-Za-z0-9_.\-]+", line).group(0)))
    return names


def local_modules() -> set[str]:
    """Module names the repository itself defines (packages, and scripts imported by their siblings)."""
    names = {"portrait_builder", "annotator_gui", "tests", "benchmarks", "conftest"}
    # Submodules of the two packages are imported through the package (portrait_builder.detect.onnx is
    # not the onnx distribution); scripts and helpers beside the tests are imported by their stem.
    for folder in ("tests", "benchmarks", "docs"):
        for path in (ROOT / folder).rglob("*.py"):
            names.add(path.stem)
    return names


def imported_top_level() -> dict[str, str]:
    """Top-level module name -> the first file that imports it (absolute imports only)."""
    found: dict[str, str] = {}
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    mods = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods = [node.module]
                else:
                    continue
                for mod in mods:
                    found.setdefault(mod.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_the_scan_sees_the_imports_we_know_of():
    imports = imported_top_level()
    for name in ("numpy", "torch", "PySide6", "cv2", "pytest", "onnx", "portrait_builder"):
        assert name in imports, name
    assert {"torch", "opencv-python-headless", "pyside6", "pytest"} <= declared_requirements()


def providing_distributions() -> dict[str, list[str]]:
    """Top-level module -> distributions, from each distribution's file list. Python 3.11's
    ``packages_distributions`` infers names from ``.py`` files only, so it misses a package whose
    files are all compiled (``dlib-bin`` installs ``dlib`` that way)."""
    out: dict[str, list[str]] = {k: list(v) for k, v in packages_distributions().items()}
    for dist in distributions():
        name = dist.metadata["Name"]
        for f in dist.files or ():
            top = f.parts[0] if len(f.parts) > 1 else f.name.split(".")[0]
            if top.endswith((".dist-info", ".data")) or top in ("..", "__pycache__"):
                continue
            if name not in out.setdefault(top, []):
                out[top].append(name)
    return out


def test_every_imported_package_is_declared():
    declared = declared_requirements()
    local = local_modules()
    dists = providing_distributions()
    missing = []
    for module, where in sorted(imported_top_level().items()):
        if module in sys.stdlib_module_names or module in local or module in OPTIONAL:
            continue
        providers = {_canonical(d) for d in dists.get(module, [])}
        if not providers & declared:
            missing.append(f"{module} (imported by {where}; installed from {sorted(providers) or 'nothing'})")
    assert not missing, "imported but declared in no requirement of setup.cfg: " + "; ".join(missing)


@pytest.mark.parametrize("module", sorted(OPTIONAL))
def test_optional_integrations_are_guarded(module):
    source = (ROOT / "portrait_builder" / "integrations" / "reid.py").read_text(encoding="utf-8")
    assert "except ImportError" in source and module in source
