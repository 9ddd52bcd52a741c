"""Items 7 and 9: a killed restore swap is finished by the next command; a restore checks and locks before
its first change and never swaps the workspace (or its parents) aside."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _archive(mobius, ws: Path) -> Path:
    code, created = mobius.json("backup", "create", "--archive", "-w", str(ws))
    assert code == 0
    return Path(created["path"])


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_restore_killed_between_the_swap_renames_is_finished_by_the_next_command(mobius, ws):
    archive = _archive(mobius, ws)
    restored = _tree(ws / "uploads")
    (ws / "uploads" / "added-after-backup.txt").write_text("newer\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    # renames: the swap's intent file, uploads -> uploads.rollback.*, staging -> uploads (killed on entry)
    proc = subprocess.run(["strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=rename",
                           "-e", "inject=rename:signal=KILL:when=3",
                           sys.executable, "-m", "mobius", "backup", "restore", str(archive), "--to", "uploads",
                           "--yes", "-w", str(ws)], cwd=ws, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert not (ws / "uploads").exists(), "the kill landed between the two renames"
    after = mobius("media", "manifest", "-w", str(ws))
    assert "finished an interrupted swap" in after.stderr
    assert after.returncode == 0, after.stderr
    assert _tree(ws / "uploads") == restored
    rollbacks = list(ws.glob("uploads.rollback.*"))
    assert len(rollbacks) == 1 and (rollbacks[0] / "added-after-backup.txt").is_file()


def _hold_migration_lock(ws: Path) -> subprocess.Popen:
    code = ("import sys, time\nfrom pathlib import Path\nfrom mobius.safety.lock import FileLock\n"
            f"with FileLock(Path({str(ws / 'mobius.db.migrate-lock')!r}), timeout=5, what='test'):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_restore_with_database_fails_before_replacing_the_library_when_the_db_lock_is_held(mobius, ws):
    archive = _archive(mobius, ws)
    (ws / "uploads" / "edit.txt").write_text("current\n")
    before = _tree(ws / "uploads")
    holder = _hold_migration_lock(ws)
    try:
        started = time.monotonic()
        proc = mobius("backup", "restore", str(archive), "--to", "uploads", "--yes", "--database", "-w", str(ws),
                      env={"MOBIUS_DB_ADVISORY_LOCK_WAIT_S": "0.5"}, cwd=ws)
        assert time.monotonic() - started < 30
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode in (1, 4), proc.stderr
    assert "migration" in proc.stderr
    assert _tree(ws / "uploads") == before, proc.stderr
    assert not list(ws.glob("uploads.rollback.*")), proc.stderr


def test_restore_refuses_the_workspace_its_parents_and_the_backups(mobius, ws):
    archive = _archive(mobius, ws)
    listing = sorted(p.name for p in ws.iterdir())
    for to in (".", "..", "/", "backups"):  # "/" is also item 18's `backup restore --to /`
        proc = mobius("backup", "restore", str(archive), "--to", to, "--yes", "-w", str(ws), cwd=ws)
        assert proc.returncode == 1, (to, proc.stderr)
        assert "refusing to restore into" in proc.stderr and "internal error" not in proc.stderr
        assert len([line for line in proc.stderr.splitlines() if line.startswith("mobius: error:")]) == 1
        assert sorted(p.name for p in ws.iterdir()) == listing
        assert not list(ws.parent.glob("*.rollback.*"))
