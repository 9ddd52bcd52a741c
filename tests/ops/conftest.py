"""Workspaces for the migration-plan tests: one initialized sample per session, copied per test,
with a reversible database migration 0004 waiting and plan files written on demand."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.db.conftest import pg_url, postgres  # noqa: F401 - the suite's PostgreSQL fixtures

from mobius.config import load_workspace
from mobius.ops.digests import database_digest, file_digest, tree_digest
from mobius.workspace.init import initialize

NOTES_MIGRATION = """-- migrate:up
ALTER TABLE games ADD COLUMN notes TEXT;
UPDATE games SET notes = 'n';

-- migrate:down
ALTER TABLE games DROP COLUMN notes;

-- migrate:verify
SELECT COUNT(*) FROM games WHERE notes IS NULL;
"""

FAILING_MIGRATION = """-- migrate:up
UPDATE games SET notes = 'x';
ALTER TABLE no_such_table ADD COLUMN y TEXT;

-- migrate:down
SELECT 1;
"""


@pytest.fixture(scope="session")
def _ops_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ops-template") / "ws"
    initialize(root, sample=True)
    (root / "migrations").mkdir(exist_ok=True)
    (root / "migrations" / "0004_add_notes.sql").write_text(NOTES_MIGRATION)
    return root


@pytest.fixture
def ops_ws(_ops_template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(_ops_template, root, symlinks=True)
    return root


def write_plan(root: Path, steps: str, *, extra: str = "", name: str = "plan.yaml") -> Path:
    path = root / name
    path.write_text(f"""name: test-plan
type: combined
risk: low
oncall: Ada Lovelace
approver: Grace Hopper
steps:
{steps}
validate: [file_counts, checksums, db_check]
probes: [library_listing]
monitors: {{sample_every: 0.1s}}
{extra}""")
    return path


CHEAP_STEPS = """  - backup: {}
  - media.migrate: {to: media-v2}
  - db.migrate: {to: 4}
"""


def snapshot(root: Path) -> dict:
    """What 'the same end state' means: library tree, database schema and rows, .env bytes, goldens."""
    ws = load_workspace(root)
    return {"library": str(ws.library_path), "library_digest": tree_digest(ws.library_path),
            "db": database_digest(ws), "env": file_digest(ws.env_file), "golden": tree_digest(ws.golden)}


def state(root: Path) -> dict:
    snap = snapshot(root)
    snap["library"] = snap["library"].replace(str(root), "<ws>")
    snap["env"] = (root / ".env").read_text().replace(str(root), "<ws>")
    return snap


def last_migration(mobius, root: Path) -> dict:
    code, out = mobius.json("-w", str(root), "history", "--type", "migrate.run")
    assert code == 0 and out["operations"], out
    code, out = mobius.json("-w", str(root), "migrate", "status", out["operations"][0]["id"])
    return out["migration"]


def step_statuses(migration: dict) -> list[tuple[str, str]]:
    return [(s["name"], s["status"]) for s in migration["steps"]]


@pytest.fixture(scope="session")
def reference(_ops_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An uninterrupted run of the cheap plan in a copy of the same template (once per session)."""
    from tests.conftest import MobiusRun

    root = tmp_path_factory.mktemp("reference") / "ws"
    shutil.copytree(_ops_template, root, symlinks=True)
    mobius = MobiusRun(root)
    plan = write_plan(root, CHEAP_STEPS)
    proc = mobius("-w", str(root), "migrate", "run", str(plan), "--yes")
    assert proc.returncode == 0, proc.stderr
    return {"state": state(root), "steps": step_statuses(last_migration(mobius, root))}
