"""Odd names, odd files, and what a killed run leaves behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from backup_support import snapshot

from mobius.backup import restore_archive, test_restore, verify_archive, write_archive
from mobius.safety.atomic import TEMP_PREFIX


def test_names_with_newlines_backslashes_and_invalid_utf8_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "library"
    root.mkdir()
    (root / "new\nline.txt").write_text("a")
    (root / "back\\slash.txt").write_text("b")
    raw_root = os.fsencode(root)
    os.mkdir(os.path.join(raw_root, b"caf\xe9 dir"))
    with open(os.path.join(raw_root, b"caf\xe9 dir", b"card\xff.png"), "wb") as handle:
        handle.write(b"c")
    (root / ("long" * 40)).mkdir()
    (root / ("long" * 40) / ("name" * 30 + ".png")).write_text("d")
    archive = write_archive(root, tmp_path / "backups", "mobius_library").path
    assert verify_archive(archive).files == 4
    restore_archive(archive, tmp_path / "restored")
    assert snapshot(tmp_path / "restored") == snapshot(root)
    assert test_restore(archive).ok
    by_hand = tmp_path / "by-hand"
    by_hand.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(by_hand)], check=True)
    check = subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=by_hand, capture_output=True)
    assert check.returncode == 0, check.stdout


def test_fifo_in_the_library_is_skipped_and_reported(tmp_path: Path) -> None:
    root = tmp_path / "library"
    root.mkdir()
    (root / "card.png").write_bytes(b"png")
    os.mkfifo(root / "pipe")
    result = write_archive(root, tmp_path / "backups", "mobius_library")
    assert result.files == 1 and result.skipped == [str(root / "pipe")]
    verify_archive(result.path).raise_if_failed()
def test_create_removes_leftovers_of_a_killed_run(sample_workspace: Path, mobius) -> None:
    backups = sample_workspace / "backups"
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan_temp = backups / f"{TEMP_PREFIX}{dead.pid}-abcd1234-mobius_library_20260101T000000Z.tar"
    orphan_temp.write_bytes(b"half an archive")
    orphan_sidecar = backups / "mobius_library_20260101T000000Z.tar.sha256"
    orphan_sidecar.write_text("0" * 64 + "  mobius_library_20260101T000000Z.tar\n")
    dump = backups / "mobius_db_20260101.sql"
    dump.write_text("-- another capability's file")
    proc = mobius("backup", "create", "--archive", "-w", str(sample_workspace))
    assert proc.returncode == 0, proc.stderr
    assert not orphan_temp.exists() and not orphan_sidecar.exists()
    assert dump.read_text() == "-- another capability's file"


def test_restore_without_room_exits_5_and_changes_nothing(sample_workspace: Path, mobius, tmp_path: Path) -> None:
    ws = str(sample_workspace)
    code, created = mobius.json("backup", "create", "--archive", "-w", ws)
    target = tmp_path / "target"
    proc = mobius("backup", "restore", created["path"], "--to", str(target), "--yes", "-w", ws,
                  env={"MOBIUS_FAULT": "free-bytes@disk=1000"})
    assert proc.returncode == 5, proc.stderr
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mobius-restore-")]


def test_an_archive_name_is_never_issued_twice_even_after_its_archive_was_deleted(tmp_path: Path) -> None:
    """Three creates in one second, the first's archive deleted by retention in between: the third
    must not take the first's name, or its records and logs would name two different archives."""
    from mobius.backup.catalog import new_archive_name

    folder = tmp_path / "backups"
    folder.mkdir()
    first = new_archive_name(folder, "mobius_library", "20261201T235455Z", ".tar.zst")
    (folder / first).write_bytes(b"one")
    second = new_archive_name(folder, "mobius_library", "20261201T235455Z", ".tar")
    (folder / first).unlink()  # retention
    third = new_archive_name(folder, "mobius_library", "20261201T235455Z", ".tar.zst")
    assert (first, second, third) == ("mobius_library_20261201T235455Z.tar.zst",
                                      "mobius_library_20261201T235455Z-2.tar",
                                      "mobius_library_20261201T235455Z-3.tar.zst")
    assert new_archive_name(folder, "golden", "20261201T235455Z", ".tar") == "golden_20261201T235455Z.tar"
    assert new_archive_name(folder, "mobius_library", "20261201T235456Z", ".tar") == \
        "mobius_library_20261201T235456Z.tar"
