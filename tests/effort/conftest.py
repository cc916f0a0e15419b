"""The labelling-effort benchmark's pieces (portrait_builder/testing/effort.py, benchmarks/annotation_effort.py) on
small synthetic films built into real SQLite projects."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt creates the QApplication

import pytest  # noqa: E402

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="session")
def effort():
    """The benchmark module benchmarks/annotation_effort.py (the simulated annotator and its count model)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("annotation_effort")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="session")
def world_mod():
    """The synthetic film generator (portrait_builder.testing.effort)."""
    return importlib.import_module("portrait_builder.testing.effort")


@pytest.fixture
def tiny_spec(world_mod):
    """About 40 crops: 3 characters, 2 shots, a background person in each, tracks of 8-10 crops (change points
    and face stretches fit)."""
    return world_mod.EffortSpec(characters=3, shots=2, shots_per_scene=1, shot_crops=(8, 10),
                                background_per_shot=(1, 1), seed=3)  # fmt: skip


@pytest.fixture
def make_world(effort, tmp_path):
    """Build a film into a fresh project (with the simulated annotators); closed at teardown."""
    worlds = []

    def _make(spec, name="proj"):
        world = effort.new_world(tmp_path / name, spec)
        worlds.append(world)
        return world

    yield _make
    for w in worlds:
        w.project.close()
