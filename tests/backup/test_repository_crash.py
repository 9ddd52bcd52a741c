"""kill -9 of `backup create --snapshot` and `backup prune` at named points (MOBIUS_FAULT=kill@POINT):
the repository stays valid, every remaining snapshot restores exactly, the next command cleans up.
Also: two backups at once both succeed, and a prune during a backup removes nothing it needs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from backup_support import snapshot
from repository_support import age, packs, restore_to, temp_files

from mobius.backup.index import RepositoryIndex
from mobius.backup.prune import RetentionPolicy, prune_repository
from mobius.backup.repository import Repository, SnapshotResult, write_snapshot_of
from mobius.backup.repository_check import verify_snapshots

pytestmark = pytest.mark.slow

CREATE_POINTS = ["backup:walked", "backup:pack-open", "backup:pack-renamed", "backup:pack-checked",
                 "backup:pack-indexed", "backup:before-snapshot", "backup:snapshot-written"]
PRUNE_POINTS = ["prune:planned", "prune:snapshot-removed", "prune:orphans", "backup:pack-renamed",
                "backup:pack-indexed", "prune:repacked", "prune:index-removed", "prune:pack-removed"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    env.update(extra)
    return env


def _mobius(ws: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = _env(**({"MOBIUS_FAULT": fault} if fault else {}))
    return subprocess.run([sys.executable, "-m", "mobius", *args, "-w", str(ws)], env=env, capture_output=True,
                          text=True, timeout=300)


def _workspace(tmp_path: Path) -> tuple[Path, Path, Repository]:
    ws = tmp_path / "ws"
    library = ws / "uploads"
    library.mkdir(parents=True)
    (ws / ".env").write_text("MOBIUS_LIBRARY_DIR=uploads\n")
    return ws, library, Repository(ws / "backups")


def _snapshotted(tmp_path: Path, old: tuple[int, int], new: tuple[int, int]
                 ) -> tuple[Path, Path, Repository, SnapshotResult, dict[str, dict]]:
    """A workspace whose library has `old` (count, size) files in a first snapshot, then `new` files added
    (not backed up yet); the states a restore of each snapshot must give, by id."""
    ws, library, repo = _workspace(tmp_path)
    for i in range(old[0]):
        (library / f"old-{i}.bin").write_bytes(os.urandom(old[1]))
    age(library)
    first = write_snapshot_of(repo, library)
    states = {first.id: snapshot(library)}
    for i in range(new[0]):
        (library / f"new-{i}.bin").write_bytes(os.urandom(new[1]))
    age(library)
    return ws, library, repo, first, states


def _assert_valid(repo: Repository, states: dict[str, dict], tmp_path: Path, label: str) -> None:
    """Every snapshot on disk verifies byte for byte and restores exactly what was backed up."""
    verify_snapshots(repo, read_data=True)
    for snapshot_id in repo.snapshot_ids():
        if snapshot_id in states:
            restored = restore_to(repo, snapshot_id, tmp_path / f"check-{label}-{snapshot_id}")
            assert snapshot(restored) == states[snapshot_id], (label, snapshot_id)


def _renames(command: list[str], ws: Path, tmp_path: Path) -> list[str]:
    """The renames `command` + a copy of `ws` makes (strace), so a kill can aim at each one."""
    trace = tmp_path / "renames.txt"
    shutil.copytree(ws, tmp_path / "counting", symlinks=True)  # the same run on a copy: how many renames it makes
    counted = subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=rename", *command,
                              str(tmp_path / "counting")], env=_env(), capture_output=True, text=True, timeout=300)
    assert counted.returncode == 0, counted.stderr
    return [line for line in trace.read_text().splitlines() if "rename(" in line and "resumed" not in line]


def _killed_at_rename(command: list[str], n: int) -> subprocess.CompletedProcess[str]:
    """`command` killed by SIGKILL on entering its n-th rename (strace's fault injection)."""
    return subprocess.run(["strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=rename",
                           "-e", f"inject=rename:signal=KILL:when={n}", *command], env=_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("point", CREATE_POINTS)
def test_kill_during_create_leaves_the_repository_valid_and_the_next_create_cleans_up(point: str,
                                                                                     tmp_path: Path) -> None:
    ws, library, repo, first, states = _snapshotted(tmp_path, (20, 3000), (20, 3000))
    killed = _mobius(ws, "backup", "create", "--snapshot", "--no-database", fault=f"kill@{point}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ids = repo.snapshot_ids()
    if point == "backup:snapshot-written":  # killed after the snapshot was durable: it is whole
        assert len(ids) == 2
        states[ids[-1] if ids[0] == first.id else ids[0]] = snapshot(library)
    else:
        assert ids == [first.id]
    _assert_valid(repo, states, tmp_path, "killed")
    again = _mobius(ws, "backup", "create", "--snapshot", "--no-database")
    assert again.returncode == 0, again.stderr
    assert temp_files(repo) == []
    assert repo.orphan_packs(RepositoryIndex.load(repo.index)) == []
    newest = repo.headers()[-1].id
    states[newest] = snapshot(library)
    _assert_valid(repo, states, tmp_path, "after")


def _prune_repository(tmp_path: Path) -> tuple[Path, Repository, dict[str, dict], list[str]]:
    """Three snapshots: the first's files all deleted later (its pack dropped), the second's mostly (repacked)."""
    ws, library, repo = _workspace(tmp_path)
    states: dict[str, dict] = {}
    ids = []
    for step in range(3):
        for old in list(library.iterdir()):
            if step == 1 and old.name.startswith("s0-"):
                old.unlink()
            if step == 2 and old.name.startswith("s1-") and int(old.stem.split("-")[1]) < 25:
                old.unlink()
        for i in range(30):
            (library / f"s{step}-{i}.bin").write_bytes(os.urandom(6000))
        age(library, 3600 * (5 - step))
        made = write_snapshot_of(repo, library)
        states[made.id] = snapshot(library)
        ids.append(made.id)
    return ws, repo, states, ids


@pytest.mark.parametrize("point", PRUNE_POINTS)
def test_kill_during_prune_leaves_every_snapshot_restorable_and_the_next_prune_finishes(point: str,
                                                                                       tmp_path: Path) -> None:
    ws, repo, states, ids = _prune_repository(tmp_path)
    killed = _mobius(ws, "backup", "prune", "--keep-last", "1", fault=f"kill@{point}")
    assert killed.returncode == -signal.SIGKILL, (point, killed.stdout, killed.stderr)
    assert ids[-1] in repo.snapshot_ids()
    _assert_valid(repo, states, tmp_path, "killed")
    again = _mobius(ws, "backup", "prune", "--keep-last", "1")
    assert again.returncode == 0, again.stderr
    assert repo.snapshot_ids() == [ids[-1]]
    assert temp_files(repo) == []
    index = RepositoryIndex.load(repo.index)
    assert repo.orphan_packs(index) == [] and set(index.packs) == {p.name.removesuffix(".tar.zst")
                                                                  for p in packs(repo)}
    _assert_valid(repo, states, tmp_path, "after")


def test_prune_without_a_kill_drops_and_repacks(tmp_path: Path) -> None:
    _, repo, states, ids = _prune_repository(tmp_path)
    result = prune_repository(repo, RetentionPolicy(last=1))
    assert result.packs_repacked == 1 and result.packs_removed == 2 and result.packs_written == 1
    _assert_valid(repo, states, tmp_path, "pruned")


def test_two_creates_at_once_both_succeed(tmp_path: Path) -> None:
    ws, library, repo = _workspace(tmp_path)
    for i in range(300):
        (library / f"f{i}.bin").write_bytes(os.urandom(4000))
    age(library)
    command = [sys.executable, "-m", "mobius", "backup", "create", "--snapshot", "--no-database", "-w", str(ws)]
    procs = [subprocess.Popen(command, env=_env(MOBIUS_FAULT="slow@backup:before-snapshot=1"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outcomes
    assert len(repo.snapshot_ids()) == 2
    expected = snapshot(library)
    _assert_valid(repo, dict.fromkeys(repo.snapshot_ids(), expected), tmp_path, "both")


def test_prune_during_a_create_waits_and_removes_nothing_the_create_references(tmp_path: Path) -> None:
    ws, library, repo = _workspace(tmp_path)
    for i in range(50):
        (library / f"f{i}.bin").write_bytes(os.urandom(4000))
    age(library)
    first = write_snapshot_of(repo, library)
    for i in range(50, 60):
        (library / f"f{i}.bin").write_bytes(os.urandom(4000))
    age(library)
    command = [sys.executable, "-m", "mobius", "backup", "create", "--snapshot", "--no-database", "-w", str(ws)]
    create = subprocess.Popen(command, env=_env(MOBIUS_FAULT="slow@backup:before-snapshot=3"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not packs(repo)[1:]:  # its new pack is written and indexed
        time.sleep(0.05)
    prune = _mobius(ws, "backup", "prune", "--keep-last", "1")
    out, err = create.communicate(timeout=300)
    assert create.returncode == 0, err
    assert prune.returncode == 0, prune.stderr
    newest = repo.headers()[-1].id
    assert newest != first.id
    _assert_valid(repo, {newest: snapshot(library)}, tmp_path, "after")


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_kill_at_every_rename_of_a_snapshot_create(tmp_path: Path) -> None:
    """strace's fault injection: SIGKILL on entering the n-th rename (pack, index file, snapshot, ...)."""
    ws, library, repo, first, states = _snapshotted(tmp_path, (30, 3000), (0, 0))
    (library / "big.bin").write_bytes(os.urandom(5 << 20))
    age(library)
    command = [sys.executable, "-m", "mobius", "backup", "create", "--snapshot", "--no-database", "-w"]
    renames = _renames(command, ws, tmp_path)
    assert len(renames) >= 3  # at least the pack, its index file and the snapshot
    command.append(str(ws))
    for n in range(1, len(renames) + 1):
        killed = _killed_at_rename(command, n)
        assert killed.returncode != 0, n
        _assert_valid(repo, states, tmp_path, f"rename-{n}")
    again = _mobius(ws, "backup", "create", "--snapshot", "--no-database")
    assert again.returncode == 0, again.stderr
    assert temp_files(repo) == [] and repo.orphan_packs(RepositoryIndex.load(repo.index)) == []
    verify_snapshots(repo, read_data=True)


SMALL_PACKS = ("import sys, mobius.backup.pack as pack; pack.PACK_TARGET = 1 << 20; "
               "sys.argv[0] = 'mobius'; from mobius.cli.app import main; main()")


def test_kill_at_every_rename_of_a_create_that_seals_packs_while_filling_the_next(tmp_path: Path) -> None:
    """The pipelined seal (a full pack fsynced and checked on a worker while the next fills; its rename and
    index file on the main thread) killed at each rename of a many-pack create: the real command, with only
    the pack size made 1 MiB (64 MiB packs would need 200 MiB of data for the same number of seals)."""
    ws, library, repo, first, states = _snapshotted(tmp_path, (10, 200_000), (12, 300_000))
    command = [sys.executable, "-c", SMALL_PACKS, "backup", "create", "--snapshot", "--no-database", "-w"]
    renames = _renames(command, ws, tmp_path)
    assert sum(".tar.zst" in line for line in renames) >= 3, renames  # several packs sealed: the pipeline ran
    command.append(str(ws))
    start = tmp_path / "start"
    shutil.copytree(ws, start, symlinks=True)
    for n in range(1, len(renames) + 1):  # each kill from the same start, so the n-th rename is the same one
        shutil.rmtree(ws)
        shutil.copytree(start, ws, symlinks=True)
        killed = _killed_at_rename(command, n)
        assert killed.returncode != 0, (n, renames[n - 1])
        _assert_valid(repo, states, tmp_path, f"rename-{n}")
    again = subprocess.run([*command], env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert temp_files(repo) == [] and repo.orphan_packs(RepositoryIndex.load(repo.index)) == []
    verify_snapshots(repo, read_data=True)
    newest = repo.snapshot_ids()[-1]
    assert snapshot(restore_to(repo, newest, tmp_path / "final")) == snapshot(library)
