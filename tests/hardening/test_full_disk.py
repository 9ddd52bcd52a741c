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
from hardening_support import fill, small_tmpfs

from mobius.workspace.init import initialize


@pytest.fixture
def full_ws(tmp_path: Path) -> Iterator[Path]:
    """A sample workspace on a 2 MiB tmpfs, then filled to the last byte."""
    with small_tmpfs(tmp_path / "small", "2m") as mount:
        root = mount / "ws"
        initialize(root, sample=True)
        fill(mount)
        yield root


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


@pytest.fixture
def small_mount(tmp_path: Path) -> Iterator[Path]:
    """An empty 3 MiB tmpfs (filled by the test when it is ready)."""
    with small_tmpfs(tmp_path / "small", "3m") as mount:
        yield mount


def test_an_atomic_write_that_fails_on_a_full_disk_leaves_no_temp(small_mount: Path) -> None:
    """The buffered text fails at the flush, and again at the close of the failure path: the temp goes anyway
    (it stayed, 0 bytes, when that close raised before the unlink)."""
    from mobius.safety.atomic import TEMP_PREFIX, atomic_write_text

    fill(small_mount)
    with pytest.raises(OSError):
        atomic_write_text(small_mount / "sums.sha256", "0" * 64 + "  dump.sqlite3\n")
    assert sorted(p.name for p in small_mount.iterdir()) == ["filler"]
    assert not [p for p in small_mount.iterdir() if p.name.startswith(TEMP_PREFIX)]


@pytest.mark.parametrize("room", [0, 150 << 10])
def test_a_promote_whose_target_disk_fills_stops_with_exit_5_naming_the_full_disk(mobius, ws, small_mount, room):
    """Production's backups are on a full tmpfs and its free-disk minimum is 0, so the preflight passes: with no
    room the dumps' own space check stops it; with 150 KiB the snapshot's or the restore point meets ENOSPC
    (or SQLite's "disk is full") part-way. Either way one line that says so (not an internal error), exit 5,
    production untouched, and no temp left on the full disk."""
    for args in (["env", "new", "staging", "--copy"], ["env", "new", "production"]):
        assert mobius(*args, "-w", str(ws)).returncode == 0
    env_file = ws / "environments" / "production.env"
    env_file.write_text(env_file.read_text().replace("MOBIUS_BACKUP_DIR=environments/production/backups",
                                                     f"MOBIUS_BACKUP_DIR={small_mount / 'backups'}")
                        + "MOBIUS_DEPLOY_MIN_FREE_MB=0\n")
    production = ws / "environments" / "production"

    def state() -> tuple[dict[str, bytes], bytes]:
        files = {str(p.relative_to(production)): p.read_bytes() for p in sorted((production / "uploads").rglob("*"))
                 if p.is_file()}
        return files, (production / "mobius.db").read_bytes()

    before = state()
    fill(small_mount, leave=room)
    proc = mobius("env", "promote", "--from", "staging", "--to", "production", "--yes", "-w", str(ws))
    assert proc.returncode == 5, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mobius: error:")]
    assert len(errors) == 1, proc.stderr
    # our space checks come first; ENOSPC part-way (a dump's sidecar, a pack) when they pass by a few KiB
    assert "not enough disk space" in errors[0] or "disk full" in errors[0], errors[0]
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert state() == before
    assert not [p for p in small_mount.rglob("*") if p.name.startswith(".mobius-tmp-")]


def test_a_dump_whose_sidecar_cannot_be_written_is_not_left(ws: Path, tmp_path: Path, monkeypatch) -> None:
    """ENOSPC at the sidecar, the last write of a dump (the disk filled by the dump itself): the dump goes too,
    as a half output, and the error is the disk's (exit 5 through `errors.is_disk_full`)."""
    import errno

    from mobius import db
    from mobius.config import load_workspace
    from mobius.db import dump as dump_module
    from mobius.errors import is_disk_full

    def full(path, entries):  # noqa: ANN001, ANN202 - the writer's signature
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(dump_module, "write_checksum_file", full)
    with pytest.raises(OSError) as raised:
        db.dump_database(load_workspace(ws), tmp_path / "saved.dump")
    assert is_disk_full(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir() if "saved" in p.name) == []


def test_items_that_all_fail_on_a_full_disk_are_exit_5(mobius, tmp_path: Path) -> None:
    """`render --all` through the executor's process pool on a disk with 512 KiB left: every item meets ENOSPC
    (an OSError, not one of ours), so the run is short of room (exit 5, "free space"), not a failed check."""
    with small_tmpfs(tmp_path / "mount", "40m") as mount:
        assert mobius("init", str(mount / "ws"), "--sample").returncode == 0
        fill(mount, leave=512 << 10)
        proc = mobius("render", "--all", "--json", "-w", str(mount / "ws"))
    assert proc.returncode == 5, proc.stderr
    out = json.loads(proc.stdout)
    assert out["exit_code"] == 5 and "No space left on device" in out["error"], out
    assert "free space on that filesystem" in proc.stderr and "Traceback" not in proc.stderr
