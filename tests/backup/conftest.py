"""Fixtures for the backup tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from backup_support import build_tree  # noqa: E402


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return build_tree(tmp_path / "library")
