"""A small real project (tests/release/release_project.py: 2 videos, 34 JPEG crops, labels on most crops, a
valid split), released, and a tiny baseline (pipelines/tiny.yaml, one CPU epoch) trained on that release:
the checkpoint prelabel runs over the same project's unlabelled crops."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# the release tests' builders, imported by name as they are there (a conftest cannot be imported)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "release"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint trained for one epoch on a release of the release tests' project (SQLite)."""
    from release_project import written_release

    from portrait_builder.train import load_config, train

    folder = tmp_path_factory.mktemp("prelabel_ckpt")
    release = written_release(folder)
    result = train(release, load_config("tiny", epochs=1), folder / "run", progress=False)
    return result.checkpoint


@pytest.fixture
def built(project):
    from release_project import build_project

    return build_project(project)
