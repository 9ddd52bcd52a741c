"""Fixtures for the service tests: the sample workspace with a verified backup, and a server on it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from api_support import Server, prepare_workspace  # noqa: E402


@pytest.fixture(scope="session")
def api_workspace(_sample_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_workspace(tmp_path_factory.mktemp("api") / "ws", _sample_template)


@pytest.fixture(scope="session")
def server(api_workspace: Path) -> Iterator[Server]:
    srv = Server(api_workspace)
    yield srv
    srv.stop()
