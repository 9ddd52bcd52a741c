"""`mobius db sync`, `mobius backup create` and `mobius library rehash --rollback` as one-step plans: killed
(SIGKILL) mid-command they are finished by `mobius migrate resume ID` (the end state an uninterrupted run
leaves) or undone by `mobius migrate rollback ID` (the state before is back), from the record alone; a
completed one is undone from its record too, and an undo removes only what the command made."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from tests.conftest import MOBIUS
from tests.ops.test_plain_commands import _env, _operations

from mobius.config import load_workspace
from mobius.ops.digests import database_digest

pytestmark = pytest.mark.slow  # several workspaces and mobius runs per command


def _copy(template: Path, tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(template, root, symlinks=True)
    return root


def _killed(root: Path, args: tuple[str, ...], fault: str) -> None:
    proc = subprocess.run([*MOBIUS, "-w", str(root), *args], env=_env(MOBIUS_FAULT=fault), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=300, cwd=root)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)


def _newest(mobius, root: Path) -> dict:
    return next(op for op in _operations(mobius, root) if not op["parent"])


def _killed_record(mobius, root: Path, type: str) -> dict:
    op = _newest(mobius, root)
    assert (op["type"], op["status"]) == (type, "running"), op
    return op


def _resume(mobius, root: Path, op_id: str) -> None:
    proc = mobius("-w", str(root), "migrate", "resume", op_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert next(op for op in _operations(mobius, root) if op["id"] == op_id)["status"] == "completed"


def _undo(mobius, root: Path, op_id: str) -> None:
    proc = mobius("-w", str(root), "migrate", "rollback", op_id, "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert next(op for op in _operations(mobius, root) if op["id"] == op_id)["status"] == "rolled-back"


# db sync ----------------------------------------------------------------------------------------------------

def _target(root: Path) -> str:
    return f"sqlite:///{root / 'target.db'}"


def _sync(root: Path) -> tuple[str, ...]:
    return ("db", "sync", "--from", f"sqlite:///{root / 'mobius.db'}", "--to", _target(root), "--yes")


def _target_digest(root: Path) -> str | None:
    return database_digest(load_workspace(root), _target(root))


@pytest.fixture
def sync_ws(ops_ws: Path) -> Path:
    """A workspace with a target database that differs from the workspace's (one game fewer)."""
    shutil.copyfile(ops_ws / "mobius.db", ops_ws / "target.db")
    with sqlite3.connect(ops_ws / "target.db") as db:
        db.execute("DELETE FROM games WHERE rowid = (SELECT MIN(rowid) FROM games)")
    db.close()
    return ops_ws


def test_a_killed_db_sync_resumes_or_is_undone_from_its_record(mobius, sync_ws: Path, tmp_path: Path) -> None:
    """Can fail: db sync was recorded but not a plan, so `migrate resume`/`rollback` refused its record; and a
    kill after the target was replaced, before the dump's name was recorded, left nothing to undo it with."""
    before = _target_digest(sync_ws)
    reference = _copy(sync_ws, tmp_path, "reference")
    assert mobius("-w", str(reference), *_sync(reference)).returncode == 0
    after = _target_digest(reference)
    assert after != before and after == database_digest(load_workspace(reference))

    resumed = _copy(sync_ws, tmp_path, "resumed")
    _killed(resumed, _sync(resumed), "kill@db.sync:restored")
    _resume(mobius, resumed, _killed_record(mobius, resumed, "db.sync")["id"])
    assert _target_digest(resumed) == after

    undone = _copy(sync_ws, tmp_path, "undone")
    _killed(undone, _sync(undone), "kill@db.sync:restored")
    assert _target_digest(undone) == after  # the kill came after the target was replaced
    _undo(mobius, undone, _killed_record(mobius, undone, "db.sync")["id"])
    assert _target_digest(undone) == before


def test_a_completed_db_sync_is_undone_from_its_record_and_a_new_target_removed(mobius, sync_ws: Path) -> None:
    before = _target_digest(sync_ws)
    code, out = mobius.json("-w", str(sync_ws), *_sync(sync_ws))
    assert code == 0 and out["target_dump"], out
    op = _newest(mobius, sync_ws)
    assert (op["type"], op["status"], op["params"]["to_url"]) == ("db.sync", "completed", _target(sync_ws)), op
    _undo(mobius, sync_ws, op["id"])
    assert _target_digest(sync_ws) == before

    fresh = f"sqlite:///{sync_ws / 'fresh.db'}"
    assert mobius("-w", str(sync_ws), "db", "sync", "--from", f"sqlite:///{sync_ws / 'mobius.db'}", "--to", fresh,
                  "--yes").returncode == 0
    assert (sync_ws / "fresh.db").exists()
    _undo(mobius, sync_ws, _newest(mobius, sync_ws)["id"])
    assert not (sync_ws / "fresh.db").exists()


def test_a_refused_db_sync_keeps_its_message_and_exit_code(mobius, sync_ws: Path) -> None:
    before = _target_digest(sync_ws)
    proc = mobius("-w", str(sync_ws), *_sync(sync_ws)[:-1])  # no --yes: the target is not empty
    assert proc.returncode == 1 and "is not empty" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert _target_digest(sync_ws) == before
    assert (_newest(mobius, sync_ws)["type"], _newest(mobius, sync_ws)["status"]) == ("db.sync", "failed")


# backup create ----------------------------------------------------------------------------------------------

def _snapshots(root: Path) -> list[str]:
    folder = root / "backups" / "snapshots"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_killed_backup_create_resumes_or_forgets_only_its_own_snapshot(mobius, ops_ws: Path,
                                                                          tmp_path: Path) -> None:
    """Can fail: backup create was not a plan (its record could not be resumed or undone), and an undo that
    took 'the snapshots not there before' would also forget one another backup wrote meanwhile."""
    assert mobius("-w", str(ops_ws), "backup", "create", "--no-database").returncode == 0
    earlier = _snapshots(ops_ws)
    assert len(earlier) == 1

    resumed = _copy(ops_ws, tmp_path, "resumed")
    _killed(resumed, ("backup", "create"), "kill@backup:snapshot-written")
    killed = _killed_record(mobius, resumed, "backup.snapshot")
    written = set(_snapshots(resumed)) - set(earlier)
    assert len(written) == 1  # the kill came after the snapshot file was written
    _resume(mobius, resumed, killed["id"])
    assert set(_snapshots(resumed)) - set(earlier) == written  # found, not written a second time
    assert mobius("-w", str(resumed), "backup", "verify").returncode == 0

    undone = _copy(ops_ws, tmp_path, "undone")
    _killed(undone, ("backup", "create"), "kill@backup:snapshot-written")
    killed = _killed_record(mobius, undone, "backup.snapshot")
    before_other = set(_snapshots(undone))
    assert mobius("-w", str(undone), "backup", "create", "--no-database").returncode == 0  # another, after it
    (other,) = set(_snapshots(undone)) - before_other  # not [-1]: names made in one second sort at random
    _undo(mobius, undone, killed["id"])
    assert _snapshots(undone) == sorted([*earlier, other])
    assert mobius("-w", str(undone), "backup", "verify").returncode == 0


def test_a_completed_backup_create_is_undone_from_its_record(mobius, ops_ws: Path) -> None:
    assert mobius("-w", str(ops_ws), "backup", "create", "--no-database").returncode == 0
    earlier = _snapshots(ops_ws)
    code, made = mobius.json("-w", str(ops_ws), "backup", "create")
    assert code == 0, made
    op = _newest(mobius, ops_ws)
    assert (op["type"], op["status"], op["ref"]) == ("backup.snapshot", "completed", made["id"]), op
    _undo(mobius, ops_ws, op["id"])
    assert _snapshots(ops_ws) == earlier

    code, first = mobius.json("-w", str(ops_ws), "backup", "create", "--archive", "--keep", "5")
    assert code == 0, first
    code, second = mobius.json("-w", str(ops_ws), "backup", "create", "--archive", "--keep", "5")
    assert code == 0, second
    op = _newest(mobius, ops_ws)
    assert (op["type"], op["ref"]) == ("backup.create", second["path"]), op
    _undo(mobius, ops_ws, op["id"])
    assert not Path(second["path"]).exists() and not Path(second["path"] + ".sha256").exists()
    assert Path(first["path"]).exists() and Path(first["path"] + ".sha256").exists()


# library rehash --rollback ----------------------------------------------------------------------------------

def _active(mobius, root: Path) -> str:
    from mobius.fingerprint import status

    return status(load_workspace(root)).active


def test_a_killed_rehash_rollback_resumes_or_is_undone_from_its_record(mobius, ops_ws: Path,
                                                                        tmp_path: Path) -> None:
    assert mobius("-w", str(ops_ws), "library", "hash").returncode == 0
    assert mobius("-w", str(ops_ws), "library", "rehash", "--to", "fast").returncode == 0
    switched = _active(mobius, ops_ws)

    resumed = _copy(ops_ws, tmp_path, "resumed")
    _killed(resumed, ("library", "rehash", "--rollback"), "kill@inside:library.rehash-rollback")
    assert _active(mobius, resumed) == switched
    _resume(mobius, resumed, _killed_record(mobius, resumed, "library.rehash-rollback")["id"])
    back = _active(mobius, resumed)
    assert back != switched

    proc = mobius("-w", str(ops_ws), "library", "rehash", "--rollback")
    assert proc.returncode == 0 and f"active   {back} (was {switched})" in proc.stdout, proc.stdout + proc.stderr
    op = _newest(mobius, ops_ws)
    assert (op["type"], op["status"]) == ("library.rehash-rollback", "completed"), op
    _undo(mobius, ops_ws, op["id"])
    assert _active(mobius, ops_ws) == switched


# media migrate run again after a kill ----------------------------------------------------------------------

def test_media_migrate_run_again_after_a_kill_continues_the_killed_record(mobius, ops_ws: Path,
                                                                          tmp_path: Path) -> None:
    """Can fail: the re-run started a second record and left the killed one `running` in history forever."""
    from tests.ops.conftest import state
    from tests.ops.test_plain_commands import MEDIA_MIGRATE, _killed_mid_copy

    before = state(ops_ws)
    reference = _copy(ops_ws, tmp_path, "reference")
    assert mobius("-w", str(reference), *MEDIA_MIGRATE, cwd=reference).returncode == 0
    _killed_mid_copy(ops_ws, MEDIA_MIGRATE)
    killed = _killed_record(mobius, ops_ws, "media.migrate")
    proc = mobius("-w", str(ops_ws), *MEDIA_MIGRATE, cwd=ops_ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"continuing media.migrate {killed['id']}" in proc.stdout + proc.stderr
    assert state(ops_ws) == state(reference)
    ops = [op for op in _operations(mobius, ops_ws) if not op["parent"] and op["type"] == "media.migrate"]
    assert [(op["id"], op["status"]) for op in ops] == [(killed["id"], "completed")], ops
    assert ops[0]["ref"]
    _undo(mobius, ops_ws, killed["id"])  # its undo handle is the first run's, from before the kill
    assert state(ops_ws) == before
