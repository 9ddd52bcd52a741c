"""deploy and env promote killed (SIGKILL, MOBIUS_FAULT=kill@POINT) at each phase, then finished by
`mobius migrate resume ID` (the end state equals an uninterrupted run's) or undone by `mobius migrate
rollback ID` (the state before is back), with nothing but the record."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from tests.envs.conftest import table_rows, tree

from mobius.backup.repository import Repository
from mobius.config import load_workspace
from mobius.envs.releases import deploys, list_releases
from mobius.records import RecordStore

pytestmark = pytest.mark.slow  # two mobius runs per kill point

ADD_DESIGNER = """-- migrate:up
ALTER TABLE games ADD COLUMN designer TEXT;
UPDATE games SET designer = 'unknown';
-- migrate:down
ALTER TABLE games DROP COLUMN designer;
"""
DEPLOY = ("deploy", "--env", "staging")
PROMOTE = ("env", "promote", "--from", "staging", "--to", "production", "--yes")
# kill points: the runner's (preflight:done, between: the step recorded done) and each phase's (phase:NAME
# before it runs, done:NAME right after its checkpoint is recorded)
DEPLOY_POINTS = ["preflight:done", "done:backup", "phase:migrations", "done:migrations", "done:release record",
                 "between"]
PROMOTE_POINTS = ["done:snapshot", "done:backup", "done:database copy", "done:library sync", "done:settings",
                  "between"]


@pytest.fixture(scope="module")
def template(_two_envs_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kill-template") / "ws"
    shutil.copytree(_two_envs_template, root, symlinks=True)  # make_two_envs, built once per run
    (root / "games" / "sushi-go.yaml").unlink()  # no self-test render: the phases under test stay short
    (root / "migrations").mkdir(exist_ok=True)
    (root / "migrations" / "0004_add_designer.sql").write_text(ADD_DESIGNER)
    return root


def _copy(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(template, root, symlinks=True)
    return root


def _rows(root: Path, env: str) -> dict[str, list]:
    """Every table's rows; of the migration ledger, what was applied (not when, how fast, by which run, its dump)."""
    rows = table_rows(root, env)
    rows["schema_migrations"] = [(r[0], r[1], r[2], r[8], r[9]) for r in rows.get("schema_migrations", [])]
    return rows


def end_state(root: Path, env: str) -> dict[str, Any]:
    """What a run must leave: libraries, each database's schema and rows, the environment files, the releases."""
    ws = load_workspace(root, env=env)
    return {
        "libraries": {name: tree(root / folder / "uploads") for name, folder in (("staging", "staging"),
                                                                                  ("production", "prod"))},
        "schema": {name: sqlite3.connect(root / db).execute("SELECT type, name, sql FROM sqlite_master ORDER BY "
                                                            "name").fetchall()
                   for name, db in (("staging", "staging.db"), ("production", "prod.db"))},
        "rows": {name: _rows(root, name) for name in ("staging", "production")},
        "settings": {p.name: p.read_bytes() for p in sorted((root / "environments").glob("*.env"))},
        "releases": [(r.kind, r.status, r.version, r.schema_version, (r.changed or {}).get("schema_version"))
                     for r in list_releases(ws)],
    }


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two end states differ (paths into the nested dicts), for a readable failure."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b), key=str) for d in _differences(a.get(key), b.get(key),
                                                                                    f"{where}/{key}")]
    if isinstance(a, list) and isinstance(b, list) and a != b:
        return [f"{where}: only in the first {[x for x in a if x not in b]}, only in the second "
                f"{[x for x in b if x not in a]}"]
    return [] if a == b else [f"{where}: {a} != {b}"]


@pytest.fixture(scope="module")
def uninterrupted(template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    from tests.conftest import MobiusRun

    out = {}
    for name, command, env in (("deploy", DEPLOY, "staging"), ("promote", PROMOTE, "production")):
        root = _copy(template, tmp_path_factory.mktemp(f"uninterrupted-{name}"))
        proc = MobiusRun(root.parent)(*command, "-w", str(root))
        assert proc.returncode == 0, proc.stderr
        out[name] = end_state(root, env)
    return out


def _killed(mobius, root: Path, command: tuple[str, ...], point: str, type: str) -> str:
    proc = mobius(*command, "-w", str(root), env={"MOBIUS_FAULT": f"kill@{point}"})
    assert proc.returncode == -9, (point, proc.returncode, proc.stderr)
    with RecordStore.of(load_workspace(root)) as store:
        op = store.list(type=type, limit=1)[0]
    assert op.status == "running" and op.orphaned
    return op.id


@pytest.mark.parametrize("point", DEPLOY_POINTS)
def test_deploy_killed_then_resumed_equals_an_uninterrupted_run(mobius, template: Path, tmp_path: Path,
                                                                uninterrupted: dict, point: str) -> None:
    root = _copy(template, tmp_path)
    op_id = _killed(mobius, root, DEPLOY, point, "env.deploy")
    proc = mobius("migrate", "resume", op_id, "-w", str(root))
    assert proc.returncode == 0, proc.stderr
    assert _differences(end_state(root, "staging"), uninterrupted["deploy"]) == []
    with RecordStore.of(load_workspace(root)) as store:
        op = store.get(op_id)
    assert op.status == "completed" and op.result["backup"] in _snapshots(root, "staging")


@pytest.mark.parametrize("point", DEPLOY_POINTS)
def test_deploy_killed_then_rolled_back_from_the_record(mobius, template: Path, tmp_path: Path, point: str) -> None:
    root = _copy(template, tmp_path)
    before = end_state(root, "staging")
    op_id = _killed(mobius, root, DEPLOY, point, "env.deploy")
    proc = mobius("migrate", "rollback", op_id, "--yes", "-w", str(root))
    assert proc.returncode == 0, proc.stderr
    after = end_state(root, "staging")
    assert {k: v for k, v in after.items() if k != "releases"} == {k: v for k, v in before.items()
                                                                     if k != "releases"}
    assert deploys(load_workspace(root, env="staging")) == []  # no release that changed something is left


@pytest.mark.parametrize("point", PROMOTE_POINTS)
def test_promote_killed_then_resumed_equals_an_uninterrupted_run(mobius, template: Path, tmp_path: Path,
                                                                 uninterrupted: dict, point: str) -> None:
    root = _copy(template, tmp_path)
    op_id = _killed(mobius, root, PROMOTE, point, "env.promote")
    proc = mobius("migrate", "resume", op_id, "-w", str(root))
    assert proc.returncode == 0, proc.stderr
    assert _differences(end_state(root, "production"), uninterrupted["promote"]) == []
    assert sorted(p.name for p in (root / "prod").iterdir()) == ["backups", "uploads"]  # no copy left aside
    assert _source_dumps(root) == []  # the killed run's dump of staging was removed by the resume


@pytest.mark.parametrize("point", PROMOTE_POINTS)
def test_promote_killed_then_rolled_back_from_the_record(mobius, template: Path, tmp_path: Path,
                                                         point: str) -> None:
    root = _copy(template, tmp_path)
    before = end_state(root, "production")
    op_id = _killed(mobius, root, PROMOTE, point, "env.promote")
    proc = mobius("migrate", "rollback", op_id, "--yes", "-w", str(root))
    assert proc.returncode == 0, proc.stderr
    assert _differences(end_state(root, "production"), before) == []
    assert {p.name for p in (root / "prod").iterdir()} <= {"backups", "uploads"}  # no copy left aside
    if point != "done:snapshot":  # there the runner has no step to undo yet: the next promote removes the dump
        assert _source_dumps(root) == [], proc.stdout  # removed by the rollback


def test_deploy_resume_continues_a_killed_deploy_by_its_own_command(mobius, template: Path, tmp_path: Path,
                                                                   uninterrupted: dict) -> None:
    """`mobius deploy --resume ID` is `mobius migrate resume ID` for a deploy: same record, same end state;
    it refuses an id that is not a deploy, a deploy of another environment, and options of a new deploy."""
    root = _copy(template, tmp_path)
    op_id = _killed(mobius, root, DEPLOY, "done:backup", "env.deploy")
    for argv, said in ((("--resume", op_id, "--env", "production"), "ran in 'staging', not 'production'"),
                       (("--resume", op_id, "--force"), "with the options it was started with"),
                       (("--resume", "20200101T000000Z-nope"), "is not a deploy")):
        proc = mobius("deploy", *argv, "-w", str(root))
        assert proc.returncode == 1 and said in proc.stderr, (argv, proc.stderr)
    code, out = mobius.json("deploy", "--resume", op_id, "-w", str(root))  # its environment is in the record
    assert code == 0, out
    assert out["release"] == op_id and out["env"] == "staging" and out["backup"] in _snapshots(root, "staging")
    done = {s["step"] for s in out["steps"] if s["status"] == "done"}
    assert {"backup", "migrations", "release record"} <= done and "failed" not in str(out["steps"]), out["steps"]
    assert _differences(end_state(root, "staging"), uninterrupted["deploy"]) == []
    with RecordStore.of(load_workspace(root)) as store:
        assert store.get(op_id).status == "completed"
        assert len(store.list(type="env.deploy")) == 1  # resumed, not a second deploy
    proc = mobius("deploy", "--resume", op_id, "-w", str(root))
    assert proc.returncode == 1 and "nothing to resume" in proc.stderr, proc.stderr


def _source_dumps(root: Path) -> list[str]:
    """Dumps of staging (the promote's source) in production's backups folder."""
    return sorted(p.name for p in (root / "prod" / "backups").glob("mobius_db_staging_*"))


def _snapshots(root: Path, env: str) -> list[str]:
    """The snapshot ids in the environment's backup repository (its restore points live there)."""
    return Repository(load_workspace(root, env=env).backups).snapshot_ids()
