"""A first snapshot of many files is read by forked reader processes (repository._reader_processes): what they
read is what a restore gives back; a reader that dies, or raises an exception that is not ours, stops the
create in one line with no snapshot; a kill -9 of the create leaves no reader behind; the next create works."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from backup_support import snapshot
from repository_support import age, restore_to, temp_files

from mobius.backup.index import RepositoryIndex
from mobius.backup.repository import PROCESSES_FROM, Repository
from mobius.backup.repository_check import verify_snapshots
from process_support import child_pids, gone

FILES = PROCESSES_FROM + 44


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    env.update(extra)
    return env


def _command(ws: Path) -> list[str]:
    return [sys.executable, "-m", "mobius", "backup", "create", "--snapshot", "--no-database", "-w", str(ws)]


def _workspace(tmp_path: Path) -> tuple[Path, Path, Repository]:
    ws = tmp_path / "ws"
    library = ws / "uploads"
    for folder in range(4):
        (library / f"set-{folder}").mkdir(parents=True)
    for i in range(FILES):
        (library / f"set-{i % 4}" / f"card {i:04d}.bin").write_bytes(os.urandom(100 + i * 7 % 3000))
    (library / "set-0" / "empty.bin").write_bytes(b"")
    age(library)
    (ws / ".env").write_text("MOBIUS_LIBRARY_DIR=uploads\n")
    return ws, library, Repository(ws / "backups")


def _assert_next_create_restores(ws: Path, library: Path, repo: Repository, tmp_path: Path) -> None:
    again = subprocess.run(_command(ws), env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert temp_files(repo) == [] and repo.orphan_packs(RepositoryIndex.load(repo.index)) == []
    (snapshot_id,) = repo.snapshot_ids()
    verify_snapshots(repo, read_data=True)
    assert snapshot(restore_to(repo, snapshot_id, tmp_path / "restored")) == snapshot(library)


@pytest.mark.parametrize("fault, said", [("kill@backup:read", "file reader process died"),
                                         ("crash@backup:read", "injected crash")])
def test_a_reader_process_that_dies_or_fails_stops_the_create_in_one_line(tmp_path: Path, fault: str,
                                                                         said: str) -> None:
    """Can fail: a dead worker hung the pool's futures or surfaced as a BrokenProcessPool traceback, and an
    exception raised in a worker reached the user as a traceback."""
    ws, library, repo = _workspace(tmp_path)
    failed = subprocess.run(_command(ws), env=_env(MOBIUS_FAULT=fault), capture_output=True, text=True,
                            timeout=300)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr and said in failed.stderr, failed.stderr
    assert repo.snapshot_ids() == []
    _assert_next_create_restores(ws, library, repo, tmp_path)


def test_a_killed_create_leaves_no_reader_process_behind(tmp_path: Path) -> None:
    """Can fail without PR_SET_PDEATHSIG: the readers outlive a kill -9 of the create."""
    ws, library, repo = _workspace(tmp_path)
    create = subprocess.Popen(_command(ws), env=_env(MOBIUS_FAULT="slow@backup:read=30"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        readers: list[int] = []
        while len(readers) < 2 and time.monotonic() < deadline:  # the readers are forked, then sleep in a batch
            time.sleep(0.1)
            readers = child_pids(create.pid)
        assert len(readers) >= 2, readers
        create.kill()
        create.wait(timeout=30)
        assert gone(readers), "a reader process outlived the killed create"
    finally:
        create.kill()
    _assert_next_create_restores(ws, library, repo, tmp_path)


@pytest.mark.parametrize("files", [20, FILES], ids=["threads", "processes"])
def test_a_file_changed_after_the_walk_stops_the_create_with_nothing_left_open(tmp_path: Path, monkeypatch,
                                                                              files: int) -> None:
    """Can fail: the read-ahead opens several files before it reads the first; a refusal in the middle of them
    must close every one (a leak here would exhaust descriptors over a long-running service)."""
    import mobius.backup.repository as repository
    from mobius.backup.tree import walk_tree
    from mobius.errors import VerificationError

    library = tmp_path / "uploads"
    library.mkdir()
    for i in range(files):
        (library / f"card-{i:04d}.bin").write_bytes(os.urandom(500))
    age(library)
    changed = library / f"card-{files // 2:04d}.bin"

    def walked_then_changed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - walk_tree's own signature
        listing = walk_tree(*args, **kwargs)
        changed.write_bytes(os.urandom(600))  # another program writes to the library meanwhile
        return listing

    monkeypatch.setattr(repository, "walk_tree", walked_then_changed)
    repo = Repository(tmp_path / "backups")
    open_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(VerificationError, match="changed while it was being backed up") as failed:
        repository.write_snapshot_of(repo, library)
    assert str(changed) in str(failed.value)
    assert len(os.listdir("/proc/self/fd")) == open_before
    assert repo.snapshot_ids() == [] and temp_files(repo) == []
