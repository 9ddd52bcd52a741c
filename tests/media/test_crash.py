"""Killed with SIGKILL at any point, `mobius media migrate` run again finishes with identical trees."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from media_support import MOBIUS, Paused, mobius_env, snapshot, temps

from mobius.safety.envfile import read_env_file
from process_support import child_pids, gone

pytestmark = pytest.mark.slow

ARGS = ["media", "migrate", "--no-backup", "--yes"]


def _finish(mobius, ws: Path, target: Path) -> dict:
    code, out = mobius.json(*ARGS, "--to", str(target), "-w", str(ws))
    assert code == 0, out
    return out


@pytest.mark.parametrize("point", ["copy:2", "verify:3", "publish:2", "commit:1", "switch", "switched"])
def test_killed_at_any_point_resumes_to_identical_trees(mobius, media_ws: Path, tmp_path: Path, point: str):
    source = media_ws / "uploads"
    before = snapshot(source)
    target = tmp_path / "new"
    run = Paused(media_ws, [*ARGS, "--to", str(target), "--workers", "2"], point)
    run.kill()
    assert not temps(target), "a target that was never live is written under the final names"
    if point == "copy:2":
        assert (target / run.path).is_file() and snapshot(target) != before, "a partial file, not journaled"
    if point in ("copy:2", "verify:3", "publish:2", "commit:1", "switch"):
        assert read_env_file(media_ws / ".env")["MOBIUS_LIBRARY_DIR"] == "uploads"
    out = _finish(mobius, media_ws, target)
    assert not temps(target)
    assert snapshot(target) == before
    assert snapshot(source) == before
    assert read_env_file(media_ws / ".env")["MOBIUS_LIBRARY_DIR"] == str(target)
    record = out["migration"]
    assert record["status"] == "completed" and record["previous_value"] == "uploads"
    assert record["source_manifest_sha256"] == record["target_manifest_sha256"]
    if point not in ("switch", "switched"):
        assert out["resumed"]  # the temps were removed by the command's start (test_leftovers.py)


def test_killed_repeatedly_while_copying_slowly_still_converges(mobius, media_ws: Path, tmp_path: Path):
    source = media_ws / "uploads"
    before = snapshot(source)
    target = tmp_path / "new"
    for nth in (3, 10, 25):
        run = Paused(media_ws, [*ARGS, "--to", str(target)], f"copy:{nth}", env={"MOBIUS_FAULT": "slow-copy@chunk=5"})
        run.kill()
    _finish(mobius, media_ws, target)
    assert snapshot(target) == before == snapshot(source)
    assert not temps(target)


def _many_small_files(library: Path, count: int) -> None:
    rng = __import__("random").Random(3)
    for i in range(count):
        folder = library / f"cards {i % 3}"
        folder.mkdir(exist_ok=True)
        (folder / f"card {i:04d}.webp").write_bytes(rng.randbytes(rng.randint(1024, 4096)))


@pytest.mark.parametrize(("point", "batch"), [("publish:150", "2000"), ("verify:200", "2000"),
                                              ("copy:250", "2000"), ("commit:2", "100")])
def test_killed_inside_a_batch_resumes_to_identical_trees(mobius, media_ws: Path, tmp_path: Path, point: str,
                                                          batch: str):
    """Hundreds of small files in one batch: killed after some renames (or reads, or writes) of the batch and
    before its journal commit, the next run removes the temps, copies the rest again and ends identical."""
    source = media_ws / "uploads"
    _many_small_files(source, 320)
    before = snapshot(source)
    target = tmp_path / "new"
    run = Paused(media_ws, [*ARGS, "--to", str(target)], point, env={"MOBIUS_MEDIA_BATCH_FILES": batch})
    run.kill()
    if point.startswith("publish"):
        written = list(target.rglob("card *.webp"))
        # each worker takes its slice through write, sync and re-read: the 150th publish comes after at least
        # 150 files were written, the other slices may still be writing
        assert len(written) >= 150 and not temps(target), "the batch written under its final names"
        assert _journaled(media_ws, "cards%") == 0, "and none of it journaled before the batch's commit"
    if point.startswith("commit"):  # later batches were handed to the workers, none journaled before its commit
        assert _journaled(media_ws, "cards%/%") <= 100
    out = _finish(mobius, media_ws, target)
    assert out["resumed"] and not temps(target)
    assert snapshot(target) == before == snapshot(source)


def test_a_killed_migration_leaves_no_copy_worker_writing_behind_it(mobius, media_ws: Path, tmp_path: Path):
    """Many small files are copied by worker processes: kill -9 of the migration kills them too (none keeps
    writing into the target while the next run starts), and the next run ends identical."""
    source, target = media_ws / "uploads", tmp_path / "new"
    _many_small_files(source, 320)
    before = snapshot(source)
    run = Paused(media_ws, [*ARGS, "--to", str(target), "--workers", "2"], "copy:100")
    workers = child_pids(run.proc.pid)
    assert len(workers) == 2, "the small files are copied by two worker processes"
    run.kill()
    assert gone(workers), "a worker outlived the killed migration"
    _finish(mobius, media_ws, target)
    assert snapshot(target) == before == snapshot(source)


def test_a_copy_worker_killed_stops_the_migration_in_one_line_and_the_next_run_resumes(mobius, media_ws: Path,
                                                                                        tmp_path: Path):
    source, target = media_ws / "uploads", tmp_path / "new"
    _many_small_files(source, 320)
    before = snapshot(source)
    run = Paused(media_ws, [*ARGS, "--to", str(target), "--workers", "2"], "verify:100")
    for worker in child_pids(run.proc.pid):
        os.kill(worker, signal.SIGKILL)
    stopped = run.resume()
    assert stopped.returncode == 2, stopped.stdout + stopped.stderr
    assert "Traceback" not in stopped.stderr and "copy worker process died" in stopped.stderr, stopped.stderr
    assert _journaled(media_ws, "cards%") == 0, "nothing of the batch the workers were in is journaled"
    assert read_env_file(media_ws / ".env")["MOBIUS_LIBRARY_DIR"] == "uploads"
    out = _finish(mobius, media_ws, target)
    assert out["resumed"]
    assert snapshot(target) == before == snapshot(source)


@pytest.mark.parametrize("point", ["copy", "verify"])
def test_a_bug_in_a_copy_worker_stops_the_migration_in_one_line_and_the_next_run_resumes(mobius, media_ws: Path,
                                                                                         tmp_path: Path, point: str):
    """Not one of ours: a TypeError raised inside the worker processes' write or re-read step."""
    source, target = media_ws / "uploads", tmp_path / "new"
    _many_small_files(source, 320)
    before = snapshot(source)
    failed = mobius(*ARGS, "--to", str(target), "--workers", "2", "-w", str(media_ws),
                    env={"MOBIUS_FAULT": f"crash@media:{point}"})
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr and "injected crash" in failed.stderr, failed.stderr
    assert _journaled(media_ws, "cards%") == 0, "nothing of the batch the workers were in is journaled"
    assert read_env_file(media_ws / ".env")["MOBIUS_LIBRARY_DIR"] == "uploads"
    out = _finish(mobius, media_ws, target)
    assert out["resumed"] and not temps(target)
    assert snapshot(target) == before == snapshot(source)


def test_a_bug_in_the_migration_itself_is_recorded_and_the_next_run_resumes(mobius, media_ws: Path, tmp_path: Path):
    """Not one of ours, in the migrating process (not a copy worker): the record says failed and why, as for our
    own errors, instead of staying `running` with no message."""
    source, target = media_ws / "uploads", tmp_path / "new"
    before = snapshot(source)
    failed = mobius(*ARGS, "--to", str(target), "-w", str(media_ws), env={"MOBIUS_FAULT": "crash@media:compare"})
    assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr
    code, listed = mobius.json("media", "migrations", "-w", str(media_ws))
    record = listed["migrations"][0]
    assert code == 0 and record["status"] == "failed", record
    assert "TypeError: injected crash at media:compare" in record["message"], record
    assert read_env_file(media_ws / ".env")["MOBIUS_LIBRARY_DIR"] == "uploads"
    out = _finish(mobius, media_ws, target)
    assert out["resumed"] and out["migration"]["status"] == "completed"
    assert snapshot(target) == before == snapshot(source)


def _journaled(ws: Path, like: str) -> int:
    with sqlite3.connect(ws / "state" / "media.sqlite") as db:
        return db.execute("SELECT count(*) FROM entries WHERE path LIKE ?", (like,)).fetchone()[0]


@pytest.mark.parametrize("point", ["publish:60", "verify:30", "commit:1", "copy:2"])
def test_killed_while_resyncing_a_live_target_resumes_to_identical_trees(mobius, media_ws: Path, tmp_path: Path,
                                                                         point: str):
    """A target that has been the live library keeps temp name + rename: killed among the renames, nothing
    partial is under a final name there, and the resume ends with identical trees."""
    source, target = media_ws / "uploads", tmp_path / "new"
    _many_small_files(source, 320)
    _finish(mobius, media_ws, target)
    old = snapshot(target)
    (source / "scans" / "scan 0 é.raw").write_bytes(b"x" * (3 << 20))
    rng = __import__("random").Random(11)
    for card in sorted(source.rglob("card *.webp")):
        card.write_bytes(rng.randbytes(2048))
    before = snapshot(source)
    env = {"MOBIUS_LIBRARY_DIR": str(source)}
    run = Paused(media_ws, [*ARGS, "--to", str(target), "--workers", "2"], point, env=env)
    run.kill()
    now = snapshot(target)
    assert all(now[path] in (old[path], before[path]) for path in now if ".mobius-tmp-" not in path), \
        "under every final name a whole file: the old or the new"
    code, out = mobius.json(*ARGS, "--to", str(target), "-w", str(media_ws), env=env)
    assert code == 0, out
    assert not temps(target)
    assert snapshot(target) == before == snapshot(source)


def _strace_killed(ws: Path, args: list[str], syscalls: str, nth: int, env: dict[str, str] | None = None) -> None:
    """Run the real command under strace, SIGKILLed by the kernel at the nth call of one of `syscalls`."""
    proc = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={syscalls}",
                           "-e", f"inject={syscalls}:signal=KILL:when={nth}", *MOBIUS, *args, "-w", str(ws)],
                          env=mobius_env(env), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode != 0, f"not killed at {syscalls}:{nth}: {proc.stdout} {proc.stderr}"


@pytest.mark.skipif(not shutil.which("strace"), reason="strace not installed")
@pytest.mark.parametrize(("syscalls", "nth", "live"), [("syncfs", 1, False), ("syncfs", 3, False),
                                                        ("openat", 900, False), ("rename,renameat,renameat2", 40, True),
                                                        ("rename,renameat,renameat2", 200, True)])
def test_killed_by_the_kernel_at_a_syscall_resumes_to_identical_trees(mobius, media_ws: Path, tmp_path: Path,
                                                                      syscalls: str, nth: int, live: bool):
    """kill -9 where no test hook is: at a sync of a fresh target written in place, at a file creation, at a
    rename over a live target's file; the next run converges to identical trees."""
    source, target = media_ws / "uploads", tmp_path / "new"
    _many_small_files(source, 320)
    env = {"MOBIUS_MEDIA_BATCH_FILES": "100"}
    if live:
        _finish(mobius, media_ws, target)
        rng = __import__("random").Random(12)
        for card in sorted(source.rglob("card *.webp")):
            card.write_bytes(rng.randbytes(2048))
        env["MOBIUS_LIBRARY_DIR"] = str(source)
    before = snapshot(source)
    _strace_killed(media_ws, [*ARGS, "--to", str(target), "--workers", "1"], syscalls, nth, env)
    if syscalls == "openat":
        assert 0 < len(list(target.rglob("card *"))) < 320, "killed while writing the cards"
    code, out = mobius.json(*ARGS, "--to", str(target), "-w", str(media_ws), env=env)
    assert code == 0, out
    assert not temps(target)
    assert snapshot(target) == before == snapshot(source)


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def test_a_full_disk_stops_cleanly_and_the_resume_finishes_once_there_is_room(mobius, media_ws: Path,
                                                                              tmp_path: Path):
    """A real full file system (a 6 MiB tmpfs) under a target written in place: exit 5, nothing partial
    journaled, the setting untouched; with room made (remounted larger) the same command ends identical."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "6m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        source, target = media_ws / "uploads", disk / "media"
        before = snapshot(source)
        proc = mobius(*ARGS, "--to", str(target), "--min-free-ratio", "0.1", "--workers", "2", "-w", str(media_ws))
        assert proc.returncode == 5, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr and "space" in proc.stderr, proc.stderr
        assert read_env_file(media_ws / ".env")["MOBIUS_LIBRARY_DIR"] == "uploads"
        with sqlite3.connect(media_ws / "state" / "media.sqlite") as db:
            rows = db.execute("SELECT path, dst_digest FROM entries WHERE kind = 'file'").fetchall()
        for path, digest in rows:  # what the journal holds is whole at the target
            assert hashlib.sha256((target / path).read_bytes()).hexdigest() == digest
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        _finish(mobius, media_ws, target)
        assert snapshot(target) == before == snapshot(source)
        assert not temps(target)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
