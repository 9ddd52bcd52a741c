"""Shared fixtures for the hardening tests (issue 13): sample workspaces and one rendered preview."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import built_once_per_run

from mobius.workspace.init import initialize

sys.path.insert(0, str(Path(__file__).parent))


def _db_fixtures():  # noqa: ANN202 - the suite's PostgreSQL fixtures, shared with tests/db
    import importlib.util

    spec = importlib.util.spec_from_file_location("_hardening_db_conftest",
                                                  Path(__file__).parents[1] / "db" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_db = _db_fixtures()
postgres = _db.postgres
pg_url = _db.pg_url


@pytest.fixture(scope="session")
def preview(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real render of a 4-second copy of the sample game, made once per run (a valid MP4 for golden commands;
    tests copy it before use)."""
    def build(folder: Path) -> str:
        root = folder / "ws"
        initialize(root, sample=True)
        spec = (root / "games" / "sushi-go.yaml").read_text(encoding="utf-8")
        lines = [line for line in spec.splitlines() if not line.startswith("duration:")]
        (root / "games" / "sushi-go.yaml").write_text("\n".join(lines) + "\nduration: 4\n", encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "mobius", "render", "sushi-go", "-w", str(root)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return str(root / "out" / "sushi-go" / "preview.mp4")

    return Path(built_once_per_run(tmp_path_factory, "hardening-preview", build))


@pytest.fixture
def ws(sample_workspace: Path) -> Path:
    """A fresh `mobius init --sample` workspace."""
    return sample_workspace
