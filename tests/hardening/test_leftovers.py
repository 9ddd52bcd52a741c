"""Item 17: whatever a killed run leaves (temp dumps in backups/, scratch folders in the system temp
folder, partial renders in out/<slug>/) is removed by the next command; a running process's is kept."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hardening_support import kill_at_rename, rename_number

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")


def _rehearse(ws: Path, tmp_path: Path, args: list[str], to: str) -> int:
    rehearsal = tmp_path / "rehearsal"
    shutil.copytree(ws, rehearsal, symlinks=True)
    return rename_number([*args, "-w", str(rehearsal)], rehearsal, tmp_path / "trace", to)


def _ours(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern))


def test_a_killed_db_restore_leaves_a_temp_dump_that_the_next_command_removes(mobius, ws, tmp_path):
    code, dumped = mobius.json("db", "dump", "-w", str(ws))
    assert code == 0
    args = ["db", "restore", dumped["path"], "--yes"]
    n = _rehearse(ws, tmp_path, args, "re:_prerestore_.*\\.sqlite3$")
    killed = kill_at_rename([*args, "-w", str(ws)], ws, n)
    assert killed.returncode != 0
    assert _ours(ws / "backups", ".mobius-tmp-*prerestore*"), "the kill left the temp dump"
    assert mobius("db", "status", "-w", str(ws)).returncode == 0
    assert not _ours(ws / "backups", ".mobius-tmp-*")


def test_a_killed_backup_create_leaves_scratch_that_the_next_command_removes(mobius, ws, tmp_path):
    n = _rehearse(ws, tmp_path, ["backup", "create", "--archive"], "re:mobius_library_[^/]*\\.sha256$")
    killed = kill_at_rename(["backup", "create", "--archive", "-w", str(ws)], ws, n)
    assert killed.returncode != 0
    temp = Path(tempfile.gettempdir())
    left = [p for p in temp.glob("mobius-backup-*-*")]
    assert left and _ours(ws / "backups", ".mobius-tmp-*"), "the kill left scratch folders"
    assert mobius("config", "show", "-w", str(ws)).returncode == 0
    assert not [p for p in left if p.exists()]
    assert not _ours(ws / "backups", ".mobius-tmp-*")


def test_a_killed_render_leaves_a_partial_preview_that_the_next_command_removes(mobius, ws, tmp_path):
    spec = ws / "games" / "sushi-go.yaml"
    spec.write_text("\n".join(line for line in spec.read_text().splitlines() if not line.startswith("duration:"))
                    + "\nduration: 4\n")
    n = _rehearse(ws, tmp_path, ["render", "sushi-go"], "/preview.mp4")
    killed = kill_at_rename(["render", "sushi-go", "-w", str(ws)], ws, n)
    assert killed.returncode != 0
    assert _ours(ws / "out" / "sushi-go", ".mobius-tmp-*preview.mp4")
    assert mobius("config", "show", "-w", str(ws)).returncode == 0
    assert not _ours(ws / "out" / "sushi-go", ".mobius-tmp-*")


@pytest.mark.parametrize("kind", ["verify", "restore", "backup"])
def test_system_temp_scratch_of_a_dead_run_is_removed_and_a_running_ones_kept(mobius, ws, kind):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    temp = Path(tempfile.gettempdir())
    try:
        gone = temp / f"mobius-{kind}-{dead_pid}-abc123"
        kept = temp / f"mobius-{kind}-{alive.pid}-abc123"
        for folder in (gone, kept):
            (folder / "sub").mkdir(parents=True)
            (folder / "sub" / "listing.jsonl").write_text("x")
        assert mobius("config", "show", "-w", str(ws)).returncode == 0
        assert not gone.exists() and kept.is_dir()
    finally:
        alive.kill()
        alive.wait()
        shutil.rmtree(temp / f"mobius-{kind}-{alive.pid}-abc123", ignore_errors=True)


def test_removing_a_scratch_folder_that_is_already_gone_leaves_its_parent_mode_alone(tmp_path):
    """Two processes sweeping one dead folder: the loser must not chmod the system temp folder to 0700."""
    from mobius.safety.leftovers import rmtree_writable

    parent = tmp_path / "temp"
    parent.mkdir()
    os.chmod(parent, 0o1777)
    rmtree_writable(parent / "mobius-restore-1-gone")
    assert stat.S_IMODE(os.stat(parent).st_mode) == 0o1777
    locked = parent / "mobius-restore-2-ro"
    (locked / "sub").mkdir(parents=True)
    (locked / "sub" / "f").write_text("x")
    os.chmod(locked / "sub", 0o500)
    rmtree_writable(locked)
    assert not locked.exists() and stat.S_IMODE(os.stat(parent).st_mode) == 0o1777


def test_parallel_removal_takes_read_only_folders_and_never_follows_a_link(tmp_path):
    """rmtree_parallel removes nested read-only folders on its pool, and a link given as the root,
    or met inside, is removed as a link: what it points at stays."""
    from mobius.safety.leftovers import rmtree_parallel

    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "precious.txt").write_text("keep")
    tree = tmp_path / "tree"
    for a in range(3):
        for b in range(5):
            folder = tree / f"a{a}" / f"b{b}"
            folder.mkdir(parents=True)
            (folder / "f.txt").write_text("x")
        os.symlink(kept, tree / f"a{a}" / "door")
        os.chmod(tree / f"a{a}", 0o500)
    link = tmp_path / "link"
    os.symlink(tree, link)
    rmtree_parallel(link)  # refused quietly, as rmtree_writable does: never lists through a link
    assert (tree / "a0" / "b0" / "f.txt").exists() and (tree / "a2" / "b4").is_dir()
    rmtree_parallel(tree)
    assert not tree.exists()
    assert (kept / "precious.txt").read_text() == "keep"
