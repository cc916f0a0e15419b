"""Where the shipped `schemas/` and `pipelines/` folders are, in a source tree and in an installed wheel.

In a checkout (and an editable install) they sit beside the package; a wheel installs them as data
files under ``<prefix>/share/portrait_builder/`` (see ``[options.data_files]`` in setup.cfg).
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_MARKERS = {"schemas": "taxonomy.yaml", "pipelines": "ingest.yaml"}


def _candidates(name: str) -> list[Path]:
    roots = [_PACKAGE_DIR.parent]
    for prefix in {sys.prefix, sysconfig.get_paths()["data"]}:
        roots.append(Path(prefix) / "share" / "portrait_builder")
    return [root / name for root in roots]


def resource_dir(name: str) -> Path:
    """Return the folder holding the shipped ``schemas`` or ``pipelines``."""
    if name not in _MARKERS:
        raise ValueError(f"unknown resource folder {name!r}; valid: {sorted(_MARKERS)}")
    for candidate in _candidates(name):
        if (candidate / _MARKERS[name]).is_file():
            return candidate
    searched = ", ".join(str(c) for c in _candidates(name))
    raise FileNotFoundError(f"the installed package has no {name}/ folder (searched {searched})")


def schemas_dir() -> Path:
    return resource_dir("schemas")


def pipelines_dir() -> Path:
    return resource_dir("pipelines")
