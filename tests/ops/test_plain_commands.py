"""Plain commands run as one-step plans: `mobius db migrate` and `mobius media migrate` killed (SIGKILL)
mid-command are finished by `mobius migrate resume ID` (the end state equals an uninterrupted run's) or
undone by `mobius migrate rollback ID` (the state before is back), with nothing but the record; the
record is the command's own (its type, parameters, result, journal id), with no second one inside it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.conftest import MOBIUS
from tests.ops.conftest import state

pytestmark = pytest.mark.slow  # three workspaces and several mobius runs per command

DB_MIGRATE = ("db", "migrate", "--yes")
MEDIA_MIGRATE = ("media", "migrate", "--to", "media-v2", "--no-backup", "--yes")  # run in the workspace


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}, **extra}


def _copy(template: Path, tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(template, root, symlinks=True)
    return root


def _operations(mobius, root: Path) -> list[dict]:
    code, out = mobius.json("-w", str(root), "history", "--limit", "100")
    assert code == 0, out
    return out["operations"]


def _killed_by_fault(root: Path, args: tuple[str, ...], fault: str) -> None:
    proc = subprocess.run([*MOBIUS, "-w", str(root), *args], env=_env(MOBIUS_FAULT=fault), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=300, cwd=root)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)


def _killed_mid_copy(root: Path, args: tuple[str, ...]) -> None:
    """Stopped inside the copy of the first file (the media copier's pause point), then SIGKILL."""
    marker = root / "state" / "media-test-pause"
    proc = subprocess.Popen([*MOBIUS, "-w", str(root), *args], env=_env(MOBIUS_FAULT="pause@copy"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            cwd=root)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "never reached the copy"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    marker.unlink()


def _the_killed_command(mobius, root: Path, type: str) -> dict:
    ops = [op for op in _operations(mobius, root) if not op["parent"]]
    assert ops[0]["type"] == type and ops[0]["status"] == "running", ops[0]
    assert [op for op in _operations(mobius, root) if op["parent"] == ops[0]["id"] and op["type"] == type] == []
    return ops[0]


@pytest.mark.parametrize("command, type, kill", [
    (DB_MIGRATE, "db.migrate", lambda root, args: _killed_by_fault(root, args, "kill@inside:db.migrate")),
    (MEDIA_MIGRATE, "media.migrate", _killed_mid_copy),
], ids=["db-migrate", "media-migrate"])
def test_a_killed_command_resumes_to_the_same_end_state_or_rolls_back(mobius, ops_ws: Path, tmp_path: Path,
                                                                      command, type, kill) -> None:
    before = state(ops_ws)
    reference = _copy(ops_ws, tmp_path, "reference")
    proc = mobius("-w", str(reference), *command, cwd=reference)  # a relative --to is the workspace's
    assert proc.returncode == 0, proc.stderr
    after = state(reference)
    assert after != before
    ran = next(op for op in _operations(mobius, reference) if not op["parent"])
    assert ran["type"] == type and ran["status"] == "completed" and ran["ref"], ran

    resumed = _copy(ops_ws, tmp_path, "resumed")
    kill(resumed, command)
    killed = _the_killed_command(mobius, resumed, type)
    proc = mobius("-w", str(resumed), "migrate", "resume", killed["id"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert state(resumed) == after
    done = next(op for op in _operations(mobius, resumed) if op["id"] == killed["id"])
    assert done["status"] == "completed" and done["ref"], done

    undone = _copy(ops_ws, tmp_path, "undone")
    kill(undone, command)
    killed = _the_killed_command(mobius, undone, type)
    proc = mobius("-w", str(undone), "migrate", "rollback", killed["id"], "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert state(undone) == before
    assert next(op for op in _operations(mobius, undone) if op["id"] == killed["id"])["status"] == "rolled-back"


def test_a_completed_command_is_undone_from_its_record(mobius, ops_ws: Path) -> None:
    before = state(ops_ws)
    code, out = mobius.json("-w", str(ops_ws), *DB_MIGRATE)
    assert code == 0 and out["current_version"] == 4, out
    op = next(op for op in _operations(mobius, ops_ws) if not op["parent"])
    assert (op["type"], op["params"]["to"], op["params"]["backup"]) == ("db.migrate", None, True)
    assert op["result"]["current_version"] == 4 and op["ref"] == out["run_id"]
    proc = mobius("-w", str(ops_ws), "migrate", "rollback", op["id"], "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert state(ops_ws) == before


def test_a_failing_command_keeps_its_own_error_and_exit_code(mobius, ops_ws: Path) -> None:
    proc = mobius("-w", str(ops_ws), "db", "migrate", "--to", "99", "--yes")
    assert proc.returncode == 1 and "--to 99: no migration has that version" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    op = next(op for op in _operations(mobius, ops_ws) if not op["parent"])
    assert (op["type"], op["status"], op["params"]["to"]) == ("db.migrate", "failed", 99)


def _newest(mobius, root: Path) -> dict:
    return next(op for op in _operations(mobius, root) if not op["parent"])


def test_db_rollback_and_db_restore_are_undone_from_their_records(mobius, ops_ws: Path) -> None:
    assert mobius("-w", str(ops_ws), *DB_MIGRATE).returncode == 0
    migrated = state(ops_ws)
    code, dumped = mobius.json("-w", str(ops_ws), "db", "dump", "--out", str(ops_ws / "at-4.sqlite3"))
    assert code == 0, dumped
    proc = mobius("-w", str(ops_ws), "db", "rollback", "--yes")
    assert proc.returncode == 0 and "is at version 3" in proc.stdout, proc.stdout + proc.stderr
    rolled = _newest(mobius, ops_ws)
    assert (rolled["type"], rolled["status"]) == ("db.rollback", "completed") and rolled["ref"], rolled
    assert state(ops_ws) != migrated
    assert mobius("-w", str(ops_ws), "migrate", "rollback", rolled["id"], "--yes").returncode == 0
    assert state(ops_ws) == migrated

    assert mobius("-w", str(ops_ws), "db", "rollback", "--yes").returncode == 0
    at_3 = state(ops_ws)
    code, out = mobius.json("-w", str(ops_ws), "db", "restore", dumped["path"], "--yes")
    assert code == 0 and out["safety_dump"], out
    assert state(ops_ws) == migrated
    restored = _newest(mobius, ops_ws)
    assert (restored["type"], restored["params"]["dump"]) == ("db.restore", dumped["path"])
    assert mobius("-w", str(ops_ws), "migrate", "rollback", restored["id"], "--yes").returncode == 0
    assert state(ops_ws) == at_3


def test_config_set_is_undone_from_its_record_and_a_secret_never_enters_it(mobius, ops_ws: Path) -> None:
    before = (ops_ws / ".env").read_bytes()
    proc = mobius("-w", str(ops_ws), "config", "set", "MOBIUS_BACKUP_KEEP", "9")
    assert proc.returncode == 0 and "MOBIUS_BACKUP_KEEP=9" in proc.stdout, proc.stdout + proc.stderr
    op = _newest(mobius, ops_ws)
    assert (op["type"], op["params"]["name"], op["params"]["value"]) == ("config.set", "MOBIUS_BACKUP_KEEP", "9")
    assert mobius("-w", str(ops_ws), "migrate", "rollback", op["id"], "--yes").returncode == 0
    assert (ops_ws / ".env").read_bytes() == before

    assert mobius("-w", str(ops_ws), "config", "set", "MOBIUS_API_TOKEN", "tok-5ecret-1").returncode == 0
    assert mobius("-w", str(ops_ws), "config", "set", "MOBIUS_API_TOKEN", "tok-5ecret-2").returncode == 0
    second = _newest(mobius, ops_ws)
    proc = mobius("-w", str(ops_ws), "migrate", "rollback", second["id"], "--yes")
    assert proc.returncode == 2 and "tok-5ecret-1" not in (ops_ws / ".env").read_text().replace("tok-5ecret-2", "")
    assert "tok-5ecret-2" in (ops_ws / ".env").read_text()  # the mask was never written in its place
    history = mobius("-w", str(ops_ws), "history", "--limit", "100", "--json").stdout
    assert "tok-5ecret" not in history
    assert all(b"tok-5ecret" not in p.read_bytes() for p in (ops_ws / "state").glob("operations.sqlite*"))


def test_a_plain_command_runs_beside_another_but_never_beside_a_plan(mobius, ops_ws: Path) -> None:
    from mobius.safety.lock import FileLock

    before = (ops_ws / ".env").read_bytes()
    with FileLock(ops_ws / "state" / "migrate.lock", what="a migration"):  # as migrate run/resume/rollback hold it
        proc = mobius("-w", str(ops_ws), "config", "set", "MOBIUS_BACKUP_KEEP", "9")
    assert proc.returncode == 1 and "another mobius process is running a migration" in proc.stderr, proc.stderr
    assert (ops_ws / ".env").read_bytes() == before
    with FileLock(ops_ws / "state" / "migrate.lock", what="a plain command", shared=True):  # another plain command
        assert mobius("-w", str(ops_ws), "config", "set", "MOBIUS_BACKUP_KEEP", "9").returncode == 0


def test_backup_restore_with_its_database_is_undone_from_its_record(mobius, ops_ws: Path) -> None:
    import sqlite3

    code, made = mobius.json("-w", str(ops_ws), "backup", "create", "--archive")
    assert code == 0, made
    (ops_ws / "uploads" / "added-after-the-backup.txt").write_text("new")
    with sqlite3.connect(ops_ws / "mobius.db") as db:
        db.execute("DELETE FROM games WHERE rowid = (SELECT MIN(rowid) FROM games)")
    changed = state(ops_ws)
    proc = mobius("-w", str(ops_ws), "backup", "restore", made["path"], "--to", str(ops_ws / "uploads"),
                  "--database", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert state(ops_ws) != changed
    op = _newest(mobius, ops_ws)
    assert (op["type"], op["status"]) == ("backup.restore", "completed"), op
    proc = mobius("-w", str(ops_ws), "migrate", "rollback", op["id"], "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert state(ops_ws) == changed
    assert not list(ops_ws.glob("uploads.rollback.*"))
