"""Items 15 and 16: on a full disk logging never breaks a command, space is checked first, and a full
disk is exit 5 with one line (and `--json` never says ok with a non-zero exit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hardening_support import fill

from mobius.workspace.init import initialize


@pytest.fixture
def full_ws(tmp_path: Path) -> Iterator[Path]:
    """A sample workspace on a 2 MiB tmpfs, then filled to the last byte."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        root = mount / "ws"
        initialize(root, sample=True)
        fill(mount)
        yield root
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.parametrize("command", [["backup", "create"], ["db", "dump"], ["db", "rollback", "--yes"],
                                     ["config", "show"]])
def test_a_full_disk_is_exit_5_with_one_line_never_a_traceback(mobius, full_ws, command):
    proc = mobius(*command, "--json", "-w", str(full_ws))
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    out = json.loads(lines[0])
    assert out["ok"] is (proc.returncode == 0), (proc.returncode, out)
    if command != ["config", "show"]:
        assert proc.returncode == 5, proc.stderr
        assert "disk" in out["error"]
    else:
        assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "cannot write the log file" in line]
    assert len(warnings) == 1, proc.stderr


def test_backup_create_checks_space_before_the_database_dump(mobius, ws):
    proc = mobius("backup", "create", "-w", str(ws), env={"MOBIUS_FAULT": "free-bytes@disk=1000"})
    assert proc.returncode == 5, proc.stderr
    assert "not enough disk space" in proc.stderr and "internal error" not in proc.stderr
    assert not [p for p in (ws / "backups").iterdir() if p.name.startswith(".mobius-tmp-")]
    logs = "".join(p.read_text() for p in (ws / "logs").glob("*backup-create.jsonl"))
    assert "db.dump.done" not in logs, "the space check comes before the database dump"


@pytest.mark.parametrize("command", [["db", "dump"], ["db", "rollback", "--yes"]])
def test_db_dump_and_rollback_check_space_first(mobius, ws, command):
    proc = mobius(*command, "-w", str(ws), env={"MOBIUS_FAULT": "free-bytes@disk=1000"})
    assert proc.returncode == 5, proc.stderr
    assert "not enough disk space" in proc.stderr
    assert not list((ws / "backups").glob("mobius_db_*"))


def test_a_device_error_writing_the_record_store_is_one_line_not_an_internal_error(ws):
    """strace makes every pwrite64 fail with EIO (SQLite writes its pages and WAL with pwrite64), as a dying
    device does with room left: one line naming the record store, exit 2, the library untouched."""
    def library() -> dict[str, bytes]:
        return {str(p.relative_to(ws)): p.read_bytes() for p in sorted((ws / "uploads").rglob("*")) if p.is_file()}

    before = library()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    command = ["strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=pwrite64",
               "-e", "inject=pwrite64:error=EIO:when=1+", sys.executable, "-m", "mobius", "backup", "create",
               "-w", str(ws)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "record store" in proc.stderr and "disk I/O error" in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert library() == before
