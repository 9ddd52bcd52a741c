"""`mobius backup ...` as a person or a script runs it: the real command in a subprocess."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from backup_support import listing, snapshot, write_sidecar

from mobius.backup import apply_retention, list_backups, verify_archive, write_archive
from mobius.backup.catalog import append_event


def _backups(ws: Path) -> list[Path]:
    return sorted(p for p in (ws / "backups").iterdir() if p.name.endswith((".tar", ".tar.zst")))


def test_create_prints_one_json_object_and_global_options_work_after_the_subcommand(sample_workspace: Path,
                                                                                     mobius) -> None:
    code, first = mobius.json("--workspace", str(sample_workspace), "backup", "create", "--archive")
    assert code == 0 and first["ok"] and first["verified"]
    code, second = mobius.json("backup", "create", "--archive", "--workspace", str(sample_workspace))
    assert code == 0
    for result in (first, second):
        path = Path(result["path"])
        assert path.is_absolute() and path.is_file() and path.parent == sample_workspace / "backups"
        assert result["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert result["files"] > 10 and result["bytes"] > 0 and result["seconds"] >= 0
    code, listed = mobius.json("backup", "list", "-w", str(sample_workspace))
    assert [b["path"] for b in listed["backups"]] == [second["path"], first["path"]]
    assert {b["state"] for b in listed["backups"]} == {"verified"}


def test_verify_test_restore_and_restore_of_a_sample_backup(sample_workspace: Path, mobius) -> None:
    ws = str(sample_workspace)
    code, created = mobius.json("backup", "create", "--archive", "-w", ws)
    name = Path(created["path"]).name
    code, verified = mobius.json("backup", "verify", name, "-w", ws)
    assert code == 0 and verified["has_manifest"] and verified["files"] == created["files"]
    code, tested = mobius.json("backup", "test-restore", name, "-w", ws)
    assert code == 0 and tested["ok"] and tested["compared"] > tested["files"] > 0
    assert listing(sample_workspace / "backups") == {name, name + ".sha256", name + ".log.jsonl",
                                                     ".mobius-backup.lock", ".mobius-last-archive"}
    library = sample_workspace / "uploads"
    before = snapshot(library)
    (library / "sushi-go" / "stray.txt").write_text("added after the backup")
    proc = mobius("backup", "restore", name, "--to", str(library), "--yes", "-w", ws)
    assert proc.returncode == 0, proc.stderr
    assert snapshot(library) == before
    rollbacks = list(sample_workspace.glob("uploads.rollback.*"))
    assert len(rollbacks) == 1 and (rollbacks[0] / "sushi-go" / "stray.txt").is_file()


def test_restore_without_a_terminal_refuses_with_exit_1_and_changes_nothing(sample_workspace: Path, mobius) -> None:
    ws = str(sample_workspace)
    code, created = mobius.json("backup", "create", "--archive", "-w", ws)
    library = sample_workspace / "uploads"
    before = snapshot(library)
    entries = listing(sample_workspace)
    proc = mobius("backup", "restore", created["path"], "--to", str(library), "-w", ws)
    assert proc.returncode == 1
    assert "--yes" in proc.stderr and "Traceback" not in proc.stderr
    assert snapshot(library) == before
    assert {e for e in listing(sample_workspace) if not e.startswith("logs/")} == \
        {e for e in entries if not e.startswith("logs/")}


def test_restore_of_a_name_that_is_nothing_is_refused_even_in_a_dry_run(sample_workspace: Path, mobius,
                                                                         tmp_path: Path) -> None:
    ws = str(sample_workspace)
    entries = listing(sample_workspace)
    for to in (str(tmp_path / "out"), "s3://media/restored"):
        for extra in ((), ("--dry-run",)):
            proc = mobius("backup", "restore", "nosuch", "--to", to, *extra, "-w", ws)
            assert proc.returncode == 1, (to, extra, proc.stderr)
            assert "no snapshot or archive named nosuch" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
    assert {e for e in listing(sample_workspace) if not e.startswith("logs/")} == \
        {e for e in entries if not e.startswith("logs/")}


def test_not_enough_space_exits_5_before_writing_anything(sample_workspace: Path, mobius) -> None:
    proc = mobius("backup", "create", "--archive", "-w", str(sample_workspace),
                  env={"MOBIUS_FAULT": "free-bytes@disk=1000"})
    assert proc.returncode == 5, proc.stderr
    assert "not enough disk space" in proc.stderr
    assert list((sample_workspace / "backups").iterdir()) == []


def test_damaged_archive_exits_2_naming_the_file(sample_workspace: Path, mobius) -> None:
    ws = str(sample_workspace)
    code, created = mobius.json("backup", "create", "--archive", "-w", ws)
    archive = Path(created["path"])
    archive.write_bytes(archive.read_bytes()[:-3000])
    proc = mobius("backup", "verify", str(archive), "-w", ws)
    assert proc.returncode == 2
    assert "backup verify:" in proc.stderr and "missing: library/" in proc.stderr
    code, listed = mobius.json("backup", "list", "-w", ws)
    assert listed["backups"][0]["state"] == "failed"


def test_retention_keeps_n_with_their_sidecars_and_logs(sample_workspace: Path, mobius) -> None:
    ws = str(sample_workspace)
    for _ in range(3):
        proc = mobius("backup", "create", "--archive", "--keep", "2", "-w", ws)
        assert proc.returncode == 0, proc.stderr
    archives = _backups(sample_workspace)
    assert len(archives) == 2
    expected = {".mobius-backup.lock", ".mobius-last-archive"} | {a.name + s for a in archives
                                                                for s in ("", ".sha256", ".log.jsonl")}
    assert listing(sample_workspace / "backups") == expected


def _backup_named(template: Path, folder: Path, stamp: str, verified: bool | None) -> Path:
    path = folder / f"mobius_library_{stamp}.tar.zst"
    shutil.copyfile(template, path)
    write_sidecar(path)
    if verified is not None:
        append_event(path, {"event": "backup.verified" if verified else "backup.verify_failed"})
    return path


def test_retention_never_deletes_the_newest_verified_backup(tree: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    template = write_archive(tree, tmp_path / "scratch", "t").path
    folder.mkdir()
    old_verified = _backup_named(template, folder, "20260101T000000Z", True)
    good = _backup_named(template, folder, "20260102T000000Z", True)
    newer = [_backup_named(template, folder, f"2026010{d}T000000Z", v) for d, v in ((3, False), (4, None))]
    deleted = apply_retention(folder, "mobius_library", 2)
    assert deleted == [old_verified]
    remaining = [b.path for b in list_backups(folder)]
    assert remaining == [newer[1], newer[0], good]
    assert not old_verified.with_name(old_verified.name + ".sha256").exists()
    assert not old_verified.with_name(old_verified.name + ".log.jsonl").exists()
    verify_archive(good).raise_if_failed()
def test_legacy_runbook_archive_verifies_with_a_note_and_restores(sample_workspace: Path, mobius,
                                                                    tmp_path: Path) -> None:
    ws = str(sample_workspace)
    archive = sample_workspace / "backups" / "library_backup_20240101_120000.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "-C", ws, "uploads"], check=True)
    write_sidecar(archive)
    check = subprocess.run(["sha256sum", "-c", archive.name + ".sha256"], cwd=archive.parent, capture_output=True)
    assert check.returncode == 0
    proc = mobius("backup", "verify", archive.name, "-w", ws)
    assert proc.returncode == 0, proc.stderr
    assert "no per-file manifest" in proc.stdout
    proc = mobius("backup", "restore", str(archive), "--to", str(tmp_path / "restored"), "--yes", "-w", ws)
    assert proc.returncode == 0, proc.stderr
    assert _seconds(snapshot(tmp_path / "restored")) == _seconds(snapshot(sample_workspace / "uploads"))


def _seconds(snap: dict[str, tuple]) -> dict[str, tuple]:
    """A snapshot with mtimes in whole seconds, as plain tar stores them."""
    return {rel: (*entry[:2], entry[2] // 10**9, *entry[3:]) for rel, entry in snap.items()}
