"""Fixtures of the release tests; the builders live in release_project.py."""

from __future__ import annotations

import pytest
from release_project import build_project


@pytest.fixture
def built(project):
    return build_project(project)
