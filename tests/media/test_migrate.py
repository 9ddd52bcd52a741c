"""`mobius media migrate` end to end, through the real command."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from media_support import RCHAR_PROBE, Paused, mobius_env, snapshot, temps

from mobius.safety.envfile import read_env_file
from mobius.safety.lock import FileLock
from mobius.safety.tree import FILE, walk


def migrate(mobius, ws: Path, target: Path | str, *extra: str, env: dict | None = None):
    return mobius.json("media", "migrate", "--to", str(target), "--no-backup", "--yes", "-w", str(ws), *extra,
                       env=env)


def test_migrate_copies_everything_verifies_and_switches_the_library(mobius, media_ws: Path, tmp_path: Path):
    source = media_ws / "uploads"
    before = snapshot(source)
    target = tmp_path / "new media"
    code, out = migrate(mobius, media_ws, target)
    assert code == 0, out
    assert snapshot(target) == before
    assert snapshot(source) == before
    assert read_env_file(media_ws / ".env")["MOBIUS_LIBRARY_DIR"] == str(target)
    assert (media_ws / ".env").read_text().count("MOBIUS_LIBRARY_DIR") == 1
    record = out["migration"]
    assert record["status"] == "completed" and record["previous_value"] == "uploads"
    assert record["files"] == sum(1 for e in walk(source) if e.kind == FILE)
    assert record["source_manifest_sha256"] == record["target_manifest_sha256"]
    assert record["backup_skipped"] is True
    assert os.readlink(target / "link outside") == "/etc/hostname"
    assert (target / "empty folder" / "nested empty").is_dir()
    assert oct(target.stat().st_mode & 0o777) == "0o755"
    listed = mobius.json("media", "migrations", "-w", str(media_ws))[1]["migrations"]
    assert [m["id"] for m in listed] == [record["id"]]


def test_reading_the_journal_leaves_no_wal_or_shm_files_in_the_workspace(mobius, media_ws: Path, tmp_path: Path):
    """Listings, dry runs and every command's leftover sweep open the journal only to read it: afterwards the
    workspace holds the journal alone (a read-only SQLite connection cannot remove its -wal and -shm files)."""
    assert migrate(mobius, media_ws, tmp_path / "new")[0] == 0
    state = media_ws / "state"
    journal = sorted(p.name for p in state.iterdir() if p.name.startswith("media.sqlite"))
    assert journal == ["media.sqlite"]
    assert mobius.json("media", "migrations", "-w", str(media_ws))[0] == 0
    assert mobius("media", "migrate", "--to", str(tmp_path / "other"), "--dry-run", "-w", str(media_ws)).returncode == 0
    assert sorted(p.name for p in state.iterdir() if p.name.startswith("media.sqlite")) == journal
    from mobius.media.journal import MigrationJournal, MigrationRecord

    reader = MigrationJournal.read_only(state / "media.sqlite")
    try:
        with pytest.raises(sqlite3.OperationalError):  # still never writes
            reader.save(MigrationRecord("x", "s", "t", "running", "now"))
    finally:
        reader.close()
    assert sorted(p.name for p in state.iterdir() if p.name.startswith("media.sqlite")) == journal


def test_rerun_after_completion_has_nothing_to_do(mobius, media_ws: Path, tmp_path: Path):
    target = tmp_path / "new"
    assert migrate(mobius, media_ws, target)[0] == 0
    code, out = migrate(mobius, media_ws, target)
    assert code == 0 and out["nothing_to_do"] is True and out["copied_files"] == 0
    (target / "scans" / "scan 2 é.raw").write_bytes(b"edited after the switch")
    code, out = migrate(mobius, media_ws, target)
    assert code == 2 and "changed" in out["error"]


def test_rerun_checks_the_verified_fingerprints_and_still_sees_any_change(mobius, media_ws: Path, tmp_path: Path):
    """The cheap re-run (two walks against the fingerprints kept at verification, no journal read) misses
    nothing: a source file touched in place is found, and a record without fingerprints gets them."""
    target = tmp_path / "new"
    code, out = migrate(mobius, media_ws, target)
    assert code == 0
    record = out["migration"]
    assert record["source_fingerprint"] and record["target_fingerprint"]
    journal = media_ws / "state" / "media.sqlite"
    with sqlite3.connect(journal) as db:  # as written before fingerprints existed
        stored = json.loads(db.execute("SELECT record FROM migrations").fetchone()[0])
        stored["source_fingerprint"] = stored["target_fingerprint"] = None
        db.execute("UPDATE migrations SET record = ?", (json.dumps(stored),))
    code, out = migrate(mobius, media_ws, target)
    assert code == 0 and out["nothing_to_do"] is True
    assert out["migration"]["source_fingerprint"] == record["source_fingerprint"]
    scan = media_ws / "uploads" / "scans" / "scan 2 é.raw"
    os.utime(scan, ns=(scan.stat().st_atime_ns, scan.stat().st_mtime_ns + 1))  # same size, same bytes
    code, out = migrate(mobius, media_ws, target)
    assert code == 2 and "1 entries changed since" in out["error"], out


def test_dry_run_changes_nothing(mobius, media_ws: Path, tmp_path: Path):
    env_before = (media_ws / ".env").read_text()
    state_before = sorted(p.name for p in (media_ws / "state").iterdir())
    proc = mobius("media", "migrate", "--to", str(tmp_path / "new"), "--dry-run", "-w", str(media_ws))
    assert proc.returncode == 0, proc.stderr
    assert "preflight: free space" in proc.stdout and "plan: copy" in proc.stdout
    assert not (tmp_path / "new").exists()
    assert (media_ws / ".env").read_text() == env_before
    assert sorted(p.name for p in (media_ws / "state").iterdir()) == state_before


def test_refuses_bad_sources_and_targets(mobius, media_ws: Path, tmp_path: Path):
    source = media_ws / "uploads"
    assert migrate(mobius, media_ws, source / "inside")[0] == 1
    assert migrate(mobius, media_ws, media_ws)[0] == 1  # the source is inside the target
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "someone else's.txt").write_text("x")
    code, out = migrate(mobius, media_ws, busy)
    assert code == 1 and "not empty" in out["error"]
    (tmp_path / "file-lib").write_text("not a folder")
    code, out = migrate(mobius, media_ws, tmp_path / "t2", env={"MOBIUS_LIBRARY_DIR": str(tmp_path / "file-lib")})
    assert code == 1 and "not a folder" in out["error"]
    with FileLock(media_ws / "state" / "media.lock"):
        code, out = migrate(mobius, media_ws, tmp_path / "t3")
    assert code == 1 and "another mobius process" in out["error"]
    proc = mobius("media", "migrate", "--to", str(tmp_path / "t4"), "--no-backup", "-w", str(media_ws))
    assert proc.returncode == 1 and "--yes" in proc.stderr
    assert not (tmp_path / "t4").exists()


def test_not_enough_space_stops_before_writing(mobius, media_ws: Path, tmp_path: Path):
    code, out = migrate(mobius, media_ws, tmp_path / "new", env={"MOBIUS_FAULT": "free-bytes@disk=1000"})
    assert code == 5 and "disk space" in out["error"]
    assert not (tmp_path / "new").exists()


def test_free_space_under_10_percent_stops_cleanly_and_resumes(mobius, media_ws: Path, tmp_path: Path):
    target = tmp_path / "new"
    code, out = migrate(mobius, media_ws, target, "--workers", "1", env={"MOBIUS_FAULT": f"free-bytes@disk={1 << 30}"})
    assert code == 5 and "under 10%" in out["error"]
    assert target.is_dir() and not temps(target)
    assert read_env_file(media_ws / ".env")["MOBIUS_LIBRARY_DIR"] == "uploads"
    code, out = migrate(mobius, media_ws, target)
    assert code == 0 and out["resumed"] is True and out["skipped"] > 0
    assert snapshot(target) == snapshot(media_ws / "uploads")


def _later_files(library: Path, count: int) -> list[str]:
    return [e.path for e in walk(library) if e.kind == FILE and e.size > 0][-count:]


def test_unreadable_files_are_named_and_a_rerun_fixes_them(mobius, media_ws: Path, tmp_path: Path):
    """As root no permission makes a file unreadable: the plan's file vanishes, another becomes a FIFO."""
    library = media_ws / "uploads"
    gone, fifo = _later_files(library, 2)
    saved = {p: (library / p).read_bytes() for p in (gone, fifo)}
    target = tmp_path / "new"
    run = Paused(media_ws, ["media", "migrate", "--to", str(target), "--no-backup", "--yes", "--workers", "1"],
                 "copy:1")
    (library / gone).unlink()
    (library / fifo).unlink()
    os.mkfifo(library / fifo)
    done = run.resume()
    assert done.returncode == 2, done.stderr
    assert f"{gone}: unreadable: No such file" in done.stderr
    assert f"{fifo}: unreadable: no longer a regular file" in done.stderr
    assert read_env_file(media_ws / ".env")["MOBIUS_LIBRARY_DIR"] == "uploads"
    (library / fifo).unlink()
    for path, data in saved.items():
        (library / path).write_bytes(data)
    code, out = migrate(mobius, media_ws, target)
    assert code == 0, out
    assert snapshot(target) == snapshot(library)


def test_more_than_5_percent_failed_stops_with_exit_2(mobius, media_ws: Path, tmp_path: Path):
    library = media_ws / "uploads"
    victims = _later_files(library, 8)
    target = tmp_path / "new"
    run = Paused(media_ws, ["media", "migrate", "--to", str(target), "--no-backup", "--yes", "--workers", "1",
                            "--json"], "copy:1")
    for path in victims:
        os.rename(library / path, tmp_path / path.replace("/", "_"))
    done = run.resume()
    assert done.returncode == 2
    assert "more than 5%" in json.loads(done.stdout)["error"]
    for path in victims:
        os.rename(tmp_path / path.replace("/", "_"), library / path)
    assert migrate(mobius, media_ws, target)[0] == 0
    assert snapshot(target) == snapshot(library)


def test_file_changed_during_copy_is_reported_then_fixed_by_running_again(mobius, media_ws: Path, tmp_path: Path):
    library = media_ws / "uploads"
    target = tmp_path / "new"
    run = Paused(media_ws, ["media", "migrate", "--to", str(target), "--no-backup", "--yes", "--workers", "1"],
                 "verify:1")
    with open(library / run.path, "ab") as handle:
        handle.write(b"appended while it was being copied")
    done = run.resume()
    assert done.returncode == 2
    assert f"{run.path}: changed during the copy" in done.stderr
    assert not (target / run.path).exists()
    assert migrate(mobius, media_ws, target)[0] == 0
    assert snapshot(target) == snapshot(library)


def test_migrate_takes_a_backup_first_and_records_it(mobius, media_ws: Path, tmp_path: Path):
    (media_ws / "uploads" / "link outside").unlink()  # mobius backup refuses links that leave the library
    code, out = mobius.json("media", "migrate", "--to", str(tmp_path / "new"), "--yes", "-w", str(media_ws))
    assert code == 0, out
    record = out["migration"]
    archive = Path(record["backup"])
    assert record["backup_skipped"] is False and archive.is_file()
    assert archive.parent == media_ws / "backups"
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == record["backup_sha256"]
    listed = mobius.json("media", "migrations", "-w", str(media_ws))[1]["migrations"]
    assert listed[0]["backup"] == str(archive)


def test_target_pages_are_dropped_from_the_page_cache(mobius, media_ws: Path, tmp_path: Path):
    """The re-read is meant to come from the disk: DONTNEED must really evict the target's pages here."""
    if not shutil.which("fincore"):
        pytest.skip("fincore (util-linux) not installed")
    target = tmp_path / "new"
    assert migrate(mobius, media_ws, target)[0] == 0
    big = [str(p) for p in (target / "scans").iterdir()]
    resident = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", *big],
                              capture_output=True, text=True, check=True).stdout.split()
    assert resident and all(value == "0" for value in resident)


def test_rerun_with_nothing_changed_reads_no_file_contents(media_ws: Path, tmp_path: Path):
    """/proc/self/io counts every byte the re-run reads through read(): far less than one big file."""
    target = tmp_path / "new"
    args = ["media", "migrate", "--to", str(target), "--no-backup", "--yes", "-w", str(media_ws)]
    first = subprocess.run([sys.executable, "-c", RCHAR_PROBE, *args], capture_output=True, text=True,
                           env=mobius_env(), stdin=subprocess.DEVNULL)
    code, copied = map(int, first.stdout.split()[-2:])
    library_bytes = sum(p.stat().st_size for p in (media_ws / "uploads").rglob("*") if p.is_file())
    assert code == 0 and copied > library_bytes  # read every source byte and re-read every target byte
    again = subprocess.run([sys.executable, "-c", RCHAR_PROBE, *args], capture_output=True, text=True,
                           env=mobius_env(), stdin=subprocess.DEVNULL)
    code, read = map(int, again.stdout.split()[-2:])
    assert code == 0 and "nothing to do" in again.stdout
    assert read < 1_000_000 < 3 * (1 << 20)  # the journal only; each scan alone is over 3 MiB
