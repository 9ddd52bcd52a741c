"""Fixtures for the fingerprint tests: the database suite's PostgreSQL server and SQLite/PostgreSQL workspaces."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

_DB_CONFTEST = Path(__file__).parents[1] / "db" / "conftest.py"
_spec = importlib.util.spec_from_file_location("mobius_tests_db_fixtures", _DB_CONFTEST)
_db = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_db)

postgres = _db.postgres
pg_url = _db.pg_url
engine = _db.engine
query = _db.query


@pytest.fixture
def library_workspace(request: pytest.FixtureRequest, engine: str, tmp_path: Path):
    """A migrated workspace (SQLite or a fresh PostgreSQL database) with a small image library in uploads/."""
    from images import write_library

    from mobius import db

    url = request.getfixturevalue("pg_url") if engine == "postgresql" else None
    ws = _db.make_workspace(tmp_path / "ws", url)
    db.migrate_database(ws, backup=False)
    write_library(ws.library_path)
    return ws


@pytest.fixture
def sqlite_library(tmp_path: Path):
    """A migrated SQLite workspace with the small image library (for the CLI tests)."""
    from images import write_library

    from mobius import db

    ws = _db.make_workspace(tmp_path / "ws", None)
    db.migrate_database(ws, backup=False)
    write_library(ws.library_path)
    return ws
