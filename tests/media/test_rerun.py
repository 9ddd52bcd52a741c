"""A re-run of a completed migration (issue 25, item 3): both trees compared with what was verified,
ctime included, so a rewrite that keeps size and mtime is still found; only such files are hashed;
an untouched re-run reads no file; `--verify` re-reads every byte."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from media_support import RCHAR_PROBE, mobius_env, snapshot

SCAN = "scans/scan 2 é.raw"

def migrate(mobius, ws: Path, target: Path, *extra: str, env: dict | None = None):
    return mobius.json("media", "migrate", "--to", str(target), "--no-backup", "--yes", "-w", str(ws), *extra,
                       env=env)


def refused(mobius, ws: Path, target: Path, *extra: str, env: dict | None = None) -> tuple[str, list[str]]:
    """A migrate expected to exit 2: its error line and the details it printed (one per line)."""
    proc = mobius("media", "migrate", "--to", str(target), "--no-backup", "--yes", "-w", str(ws), *extra, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    return proc.stderr, [line.strip() for line in proc.stderr.splitlines() if line.startswith("  ")]


def rewrite_keeping_size_and_mtime(path: Path) -> None:
    """Other bytes in place (same inode, same size), the mtime put back: only the ctime shows it."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    with open(path, "r+b") as handle:
        handle.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    assert after.st_ctime_ns != st.st_ctime_ns


def replace_keeping_size_and_mtime(path: Path) -> None:
    """Other bytes in a new file renamed over it (new inode), size and mtime as before."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[7] ^= 0xFF
    temp = path.with_name("edited")
    temp.write_bytes(data)
    os.utime(temp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.rename(temp, path)


def rchar_of(args: list[str], env: dict[str, str] | None = None) -> tuple[int, int, str]:
    proc = subprocess.run([sys.executable, "-c", RCHAR_PROBE, *args], capture_output=True, text=True,
                          env=mobius_env(env), stdin=subprocess.DEVNULL)
    code, read = map(int, proc.stdout.split()[-2:])
    return code, read, proc.stdout


def test_target_rewritten_with_size_and_mtime_kept_is_found(mobius, media_ws: Path, tmp_path: Path):
    """The library already is the target: an in-place edit there with the mtime restored is named (exit 2)."""
    target = tmp_path / "new"
    assert migrate(mobius, media_ws, target)[0] == 0
    rewrite_keeping_size_and_mtime(target / SCAN)
    error, details = refused(mobius, media_ws, target)
    assert "1 entries changed since" in error
    assert details == [f"changed at the target since it was copied (same size and mtime, other bytes): {SCAN}"]


def test_target_file_replaced_with_size_and_mtime_kept_is_found(mobius, media_ws: Path, tmp_path: Path):
    target = tmp_path / "new"
    assert migrate(mobius, media_ws, target)[0] == 0
    replace_keeping_size_and_mtime(target / SCAN)
    error, details = refused(mobius, media_ws, target)
    assert details == [f"changed or missing at the target: {SCAN}"], error


def test_ctime_moved_but_same_bytes_is_cleared_by_hashing_that_file_only(mobius, media_ws: Path, tmp_path: Path):
    """chmod to the same mode moves the ctime only: the re-run hashes that file, finds the bytes equal,
    keeps the new ctime, and the run after it is the stat-only one again."""
    target = tmp_path / "new"
    assert migrate(mobius, media_ws, target)[0] == 0
    for path in (target / SCAN, media_ws / "uploads" / SCAN):
        os.chmod(path, path.stat().st_mode & 0o7777)
    args = ["media", "migrate", "--to", str(target), "--no-backup", "--yes", "-w", str(media_ws)]
    code, read, out = rchar_of(args)
    size = (target / SCAN).stat().st_size
    assert code == 0 and "nothing to do" in out
    assert 2 * size <= read < 2 * size + 1_000_000, read  # that one file on each side, no other
    code, read, out = rchar_of(args)
    assert code == 0 and "no file read" in out and read < 1_000_000


def test_source_rewritten_with_size_and_mtime_kept_is_copied_again(mobius, media_ws: Path, tmp_path: Path):
    """The same migrate again with the source kept as the library (the environment overrides .env): a source
    file rewritten in place, or replaced, with size and mtime kept is copied again; nothing else is."""
    source, target = media_ws / "uploads", tmp_path / "new"
    env = {"MOBIUS_LIBRARY_DIR": str(source)}
    assert migrate(mobius, media_ws, target)[0] == 0
    rewrite_keeping_size_and_mtime(source / SCAN)
    replace_keeping_size_and_mtime(source / "scans" / "scan 3 é.raw")
    code, out = migrate(mobius, media_ws, target, env=env)
    assert code == 0, out
    assert out["copied_files"] == 2 and not out["nothing_to_do"]
    assert snapshot(target) == snapshot(source)
    code, out = migrate(mobius, media_ws, target, env=env)
    assert code == 0 and out["nothing_to_do"], out


def test_target_edit_with_mtime_kept_is_a_conflict_when_the_source_is_the_library(mobius, media_ws: Path,
                                                                                  tmp_path: Path):
    source, target = media_ws / "uploads", tmp_path / "new"
    assert migrate(mobius, media_ws, target)[0] == 0
    rewrite_keeping_size_and_mtime(target / SCAN)
    edited = hashlib.sha256((target / SCAN).read_bytes()).hexdigest()
    error, details = refused(mobius, media_ws, target, env={"MOBIUS_LIBRARY_DIR": str(source)})
    assert details == [f"changed at the target since it was copied (same size and mtime, other bytes): {SCAN}"], error
    assert hashlib.sha256((target / SCAN).read_bytes()).hexdigest() == edited  # the edit is kept


def test_untouched_rerun_with_the_source_as_library_reads_no_file(mobius, media_ws: Path, tmp_path: Path):
    source, target = media_ws / "uploads", tmp_path / "new"
    assert migrate(mobius, media_ws, target)[0] == 0
    args = ["media", "migrate", "--to", str(target), "--no-backup", "--yes", "-w", str(media_ws)]
    code, read, out = rchar_of(args, {"MOBIUS_LIBRARY_DIR": str(source)})
    assert code == 0 and "no file read" in out, out
    assert read < 1_000_000 < 3 * (1 << 20)  # the journal only; each scan alone is over 3 MiB


def test_verify_rereads_every_byte_and_finds_what_no_stat_shows(mobius, media_ws: Path, tmp_path: Path):
    """A digest the journal holds that the bytes no longer match (rot a stat cannot see) is found only by
    --verify, which reads both trees whole."""
    source, target = media_ws / "uploads", tmp_path / "new"
    assert migrate(mobius, media_ws, target)[0] == 0
    args = ["media", "migrate", "--to", str(target), "--no-backup", "--yes", "--verify", "-w", str(media_ws)]
    library = sum(p.stat().st_size for p in source.rglob("*") if p.is_file() and not p.is_symlink())
    for env in (None, {"MOBIUS_LIBRARY_DIR": str(source)}):
        code, read, out = rchar_of(args, env)
        assert code == 0 and "read again" in out and read >= 2 * library, (read, out)
    with sqlite3.connect(media_ws / "state" / "media.sqlite") as db:
        db.execute("UPDATE entries SET dst_digest = ? WHERE path = ?", ("0" * 64, SCAN))
    assert migrate(mobius, media_ws, target)[1]["nothing_to_do"]  # stats unchanged: trusted
    error, details = refused(mobius, media_ws, target, "--verify")
    assert details == [f"changed at the target since it was copied (sha256 differs): {SCAN}"], error


def test_a_journal_from_before_ctimes_were_kept_still_compares(mobius, media_ws: Path, tmp_path: Path):
    target = tmp_path / "new"
    assert migrate(mobius, media_ws, target)[0] == 0
    with sqlite3.connect(media_ws / "state" / "media.sqlite") as db:
        db.execute("ALTER TABLE entries DROP COLUMN ctime_ns")
        db.execute("ALTER TABLE entries DROP COLUMN dst_ctime_ns")
        db.execute("UPDATE migrations SET record = json_set(record, '$.source_fingerprint', NULL)")
    assert mobius.json("media", "migrations", "-w", str(media_ws))[0] == 0  # read-only, old columns
    code, out = migrate(mobius, media_ws, target)
    assert code == 0 and out["nothing_to_do"] and out["migration"]["source_fingerprint"], out


@pytest.mark.parametrize("with_find", [True, False], ids=["find", "no-find"])
def test_a_change_in_either_tree_is_found_with_either_fingerprint(mobius, media_ws: Path, tmp_path: Path,
                                                                   with_find: bool):
    """The trees are fingerprinted by GNU find, or by the Python walk where there is no find (PATH without
    it): either way an untouched re-run reads no file, and a rewrite that kept size and mtime, in the
    source or in the target, and a file added to a target folder are each still found."""
    source, target = media_ws / "uploads", tmp_path / "new"
    no_find = tmp_path / "bin without find"
    no_find.mkdir()
    env = {"MOBIUS_LIBRARY_DIR": str(source)} | ({} if with_find else {"PATH": str(no_find)})
    code, out = migrate(mobius, media_ws, target, env=env)
    assert code == 0, out
    assert out["migration"]["source_fingerprint"].startswith("find:") is with_find
    assert out["migration"]["target_fingerprint"].startswith("find:") is with_find
    code, out = migrate(mobius, media_ws, target, env=env)
    assert code == 0 and out["nothing_to_do"] and "no file read" in out["evidence"][-1], out
    rewrite_keeping_size_and_mtime(source / SCAN)
    code, out = migrate(mobius, media_ws, target, env=env)
    assert code == 0 and out["copied_files"] == 1 and not out["nothing_to_do"], out
    assert snapshot(target) == snapshot(source)
    code, out = migrate(mobius, media_ws, target, env=env)
    assert code == 0 and out["nothing_to_do"], out
    rewrite_keeping_size_and_mtime(target / SCAN)
    error, details = refused(mobius, media_ws, target, env=env)
    assert details == [f"changed at the target since it was copied (same size and mtime, other bytes): {SCAN}"], error
    rewrite_keeping_size_and_mtime(target / SCAN)  # back to the copied bytes (a second flip), ctime moved again
    code, out = migrate(mobius, media_ws, target, env=env)
    assert code == 0 and out["copied_files"] == 0, out  # that file hashed on each side, equal: its ctime kept
    (target / "scans" / "added.raw").write_bytes(b"someone else's file")
    error, details = refused(mobius, media_ws, target, env=env)
    assert details == ["at the target but not in the library: scans/added.raw"], error


def test_a_find_fingerprint_without_find_compares_with_the_journal(mobius, media_ws: Path, tmp_path: Path):
    """Recorded by find, re-run where there is none: no fingerprint to compare, so the trees are compared
    with the journal (nothing to do), and a change is still found."""
    target = tmp_path / "new"
    no_find = tmp_path / "bin without find"
    no_find.mkdir()
    code, out = migrate(mobius, media_ws, target)
    assert code == 0 and out["migration"]["target_fingerprint"].startswith("find:"), out
    code, out = migrate(mobius, media_ws, target, env={"PATH": str(no_find)})
    assert code == 0 and out["nothing_to_do"], out
    rewrite_keeping_size_and_mtime(target / SCAN)
    error, details = refused(mobius, media_ws, target, env={"PATH": str(no_find)})
    assert "1 entries changed since" in error


def test_a_target_reached_through_a_symlink_is_fingerprinted_through_it(mobius, media_ws: Path, tmp_path: Path):
    """`--to` a symlink to a folder: the walk follows that one link (find without -H would list nothing
    under it, and an empty fingerprint would hide every change there)."""
    real = tmp_path / "real"
    real.mkdir()
    target = tmp_path / "new"
    target.symlink_to(real)
    assert migrate(mobius, media_ws, target)[0] == 0
    assert migrate(mobius, media_ws, target)[1]["nothing_to_do"]
    rewrite_keeping_size_and_mtime(real / SCAN)
    error, details = refused(mobius, media_ws, target)
    assert details == [f"changed at the target since it was copied (same size and mtime, other bytes): {SCAN}"], error
