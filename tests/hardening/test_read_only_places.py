"""Issue 23 item 18: reading needs no write. On a full disk `history` and `migrate status` work; on a
read-only mount the commands that must write say so in one line (exit 1 or 5), never "internal error";
a plan that is not UTF-8 is one line, exit 1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hardening_support import fill


def _mount_tmpfs(mount: Path, size: str = "4m") -> None:
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")


def _with_history(mobius, ws: Path) -> str:
    code, out = mobius.json("backup", "create", "-w", str(ws))
    assert code == 0, out
    code, listed = mobius.json("history", "-w", str(ws))
    assert code == 0 and listed["operations"], listed
    return listed["operations"][0]["id"]


@pytest.fixture
def full_ws(mobius, ws: Path, tmp_path: Path) -> Iterator[Path]:
    """The sample workspace with one recorded operation, on a tmpfs then filled to the last byte."""
    _with_history(mobius, ws)
    mount = tmp_path / "small"
    _mount_tmpfs(mount, size="64m")
    try:
        root = mount / "ws"
        shutil.copytree(ws, root, symlinks=True, ignore=shutil.ignore_patterns("backups", "uploads"))
        (root / "uploads").mkdir()
        fill(mount)
        yield root
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture
def read_only_ws(mobius, ws: Path, tmp_path: Path) -> Iterator[Path]:
    """The sample workspace with history, on a mount that is then made read-only."""
    _with_history(mobius, ws)
    mount = tmp_path / "ro"
    _mount_tmpfs(mount, size="64m")
    try:
        root = mount / "ws"
        shutil.copytree(ws, root, symlinks=True)
        subprocess.run("find . -type f -print0 | xargs -0 sha256sum > ../uploads.sha256", shell=True,
                       cwd=root / "uploads", check=True)
        assert subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True).returncode == 0
        yield root
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_reading_history_on_a_full_disk_needs_no_space(mobius, full_ws: Path) -> None:
    for args in (["history"], ["history", "--json"], ["migrate", "status"]):
        proc = mobius(*args, "-w", str(full_ws))
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    code, listed = mobius.json("history", "-w", str(full_ws))
    assert code == 0 and listed["operations"]


@pytest.mark.parametrize("command", [["history"], ["migrate", "status"],
                                     ["media", "verify", "--against", "uploads.sha256"],
                                     ["backup", "create"], ["db", "verify"]])
def test_a_read_only_workspace_is_named_in_one_line(mobius, read_only_ws: Path, command: list[str]) -> None:
    proc = mobius(*command, "--json", "-w", str(read_only_ws))
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    out = json.loads(lines[0])
    if proc.returncode == 0:  # a read that could be answered without writing
        assert out.get("ok", True), out
        return
    assert proc.returncode in (1, 5), (proc.returncode, out)
    assert "read-only" in out["error"], out


def test_a_plan_that_is_not_utf8_is_one_line(mobius, ws: Path) -> None:
    plan = ws / "migrations" / "latin1.yaml"
    plan.parent.mkdir(exist_ok=True)
    plan.write_bytes("name: caf\xe9\nsteps: []\n".encode("latin-1"))
    proc = mobius("migrate", "plan", str(plan), "-w", str(ws))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert "UTF-8" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr



@pytest.fixture
def archive_in_ws(mobius, ws: Path) -> str:
    """A full archive in the sample workspace (made before `read_only_ws` copies it: ask for this one first)."""
    code, made = mobius.json("backup", "create", "--archive", "--no-database", "-w", str(ws))
    assert code == 0, made
    return Path(made["path"]).name


def test_verifying_an_archive_needs_no_write(mobius, archive_in_ws: str, read_only_ws: Path) -> None:
    """Can fail: `backup verify` is recorded; on a read-only workspace it still checks, and says it is not recorded
    (a snapshot's check needs the repository lock, so on a read-only folder it refuses in one line)."""
    proc = mobius("backup", "verify", archive_in_ws, "--json", "-w", str(read_only_ws))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["ok"] and "operation.not_recorded" in proc.stderr
