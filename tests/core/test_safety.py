"""The safety primitives every capability stands on."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mobius.errors import InputError, ResourceError
from mobius.safety.atomic import TEMP_PREFIX, atomic_write
from mobius.safety.checksums import read_checksum_file, write_checksum_file
from mobius.safety.diskspace import require_free_space
from mobius.safety.hashing import hash_files, sha256_file
from mobius.safety.leftovers import sweep
from mobius.safety.lock import FileLock
from mobius.safety.process import process_alive

ODD_NAMES = ["plain.png", "with space.jpg", "芸者 Mai.png", "back\\slash.png", "new\nline.png"]


def test_atomic_write_failure_keeps_old_content_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "golden.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as handle:
        handle.write("half-written")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["golden.json"]


@pytest.mark.parametrize("durable", [True, False])
def test_atomic_write_replaces_and_fsyncs_only_when_durable(tmp_path: Path, monkeypatch, durable: bool) -> None:
    import os

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    target = tmp_path / "diff.png"
    target.write_bytes(b"old")
    with atomic_write(target, "wb", durable=durable) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["diff.png"]
    assert len(synced) == (2 if durable else 0)  # the file and its folder


def test_leftover_sweep_removes_only_ours(tmp_path: Path) -> None:
    (tmp_path / f"{TEMP_PREFIX}123-abcd-card.png").write_bytes(b"partial")
    (tmp_path / "card.png").write_bytes(b"real")
    removed = sweep([tmp_path])
    assert [p.name for p in removed] == [f"{TEMP_PREFIX}123-abcd-card.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["card.png"]


def test_checksum_file_is_accepted_by_sha256sum_even_for_odd_names(tmp_path: Path) -> None:
    entries = []
    for index, name in enumerate(ODD_NAMES):
        (tmp_path / name).write_bytes(bytes([index]) * 1000)
        entries.append((sha256_file(tmp_path / name), name))
    manifest = tmp_path / "SHA256SUMS"
    write_checksum_file(manifest, entries)
    proc = subprocess.run(["sha256sum", "-c", "--strict", manifest.name], cwd=tmp_path, capture_output=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(read_checksum_file(manifest)) == entries


def test_checksum_file_written_by_sha256sum_reads_back(tmp_path: Path) -> None:
    for name in ODD_NAMES:
        (tmp_path / name).write_bytes(name.encode())
    listing = subprocess.run(["sha256sum", *ODD_NAMES], cwd=tmp_path, capture_output=True, check=True).stdout
    (tmp_path / "sums").write_bytes(listing)
    parsed = dict((name, digest) for digest, name in read_checksum_file(tmp_path / "sums"))
    assert parsed == {name: hashlib.sha256(name.encode()).hexdigest() for name in ODD_NAMES}


def test_malformed_checksum_line_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "sums"
    bad.write_text("0" * 64 + "  ok.png\nnot a line\n")
    with pytest.raises(InputError, match="sums:2"):
        list(read_checksum_file(bad))


def test_hash_files_matches_hashlib_and_reports_unreadable(tmp_path: Path) -> None:
    paths = []
    for i in range(40):
        path = tmp_path / f"f{i}"
        path.write_bytes(bytes([i]) * (i * 70_001))
        paths.append(path)
    paths.append(tmp_path / "missing")
    results = list(hash_files(paths, workers=3))
    assert [p for p, _ in results] == paths
    for path, digest in results[:-1]:
        assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert isinstance(results[-1][1], OSError)


def test_require_free_space_refuses_with_exit_5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOBIUS_FAULT", "free-bytes@disk=1000")
    with pytest.raises(ResourceError) as info:
        require_free_space(tmp_path / "not-yet" / "there", 5000, what="the backup")
    assert info.value.exit_code == 5
    assert str(tmp_path) in info.value.message


def test_lock_refuses_second_process_and_dies_with_its_holder(tmp_path: Path) -> None:
    lock_path = tmp_path / "state" / "x.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys,time; from pathlib import Path; from mobius.safety.lock import FileLock;"
         f"l=FileLock(Path({str(lock_path)!r})); l.acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match="another mobius process"):
            FileLock(lock_path, timeout=0.2).acquire()
    finally:
        holder.kill()
        holder.wait()
    with FileLock(lock_path, timeout=1):  # the kernel released the dead holder's lock
        pass


def test_a_zombie_counts_as_gone_and_a_running_process_as_alive():
    """A killed copy worker whose parent died may stay a zombie (nobody reaps it); its temp files are sweepable."""
    running = subprocess.Popen(["sleep", "30"])
    ended = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while b") Z" not in Path(f"/proc/{ended.pid}/stat").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)  # not waited for: a zombie until ended.wait()
        assert process_alive(running.pid)
        assert not process_alive(ended.pid)
    finally:
        running.kill()
        running.wait()
        ended.wait()
    assert not process_alive(ended.pid)


def test_fewer_collections_applies_its_thresholds_and_restores_them_even_on_an_error() -> None:
    import gc

    from mobius.safety.collector import THRESHOLDS, fewer_collections

    before = gc.get_threshold()
    assert before != THRESHOLDS
    with fewer_collections():
        assert gc.get_threshold() == THRESHOLDS
    assert gc.get_threshold() == before
    with pytest.raises(KeyError), fewer_collections():
        raise KeyError("x")
    assert gc.get_threshold() == before
