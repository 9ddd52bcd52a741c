"""Rollback switches back only to a verified source; finalize deletes the source only after the target verifies."""

from __future__ import annotations

from pathlib import Path

from media_support import Paused, snapshot

from mobius.safety.envfile import read_env_file


def _migrated(mobius, ws: Path, target: Path) -> str:
    code, out = mobius.json("media", "migrate", "--to", str(target), "--no-backup", "--yes", "-w", str(ws))
    assert code == 0, out
    return out["migration"]["id"]


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_rollback_verifies_the_source_and_switches_back(mobius, media_ws: Path, tmp_path: Path):
    migration = _migrated(mobius, media_ws, tmp_path / "new")
    code, out = mobius.json("media", "rollback", "-w", str(media_ws))
    assert code == 0, out
    assert out["migration"]["id"] == migration and out["verify"]["verified"] is True
    assert read_env_file(media_ws / ".env")["MOBIUS_LIBRARY_DIR"] == "uploads"
    status = mobius.json("media", "migrations", "-w", str(media_ws))[1]["migrations"][0]["status"]
    assert status == "rolled-back"
    code, out = mobius.json("media", "migrate", "--to", str(tmp_path / "new"), "--no-backup", "--yes",
                            "-w", str(media_ws))
    assert code == 0 and out["migration"]["id"] == migration and out["copied_files"] == 0


def test_rollback_refuses_a_damaged_source_and_keeps_the_setting(mobius, media_ws: Path, tmp_path: Path):
    target = tmp_path / "new"
    _migrated(mobius, media_ws, target)
    _flip_a_byte(media_ws / "uploads" / "scans" / "scan 3 é.raw")
    code, out = mobius.json("media", "rollback", "-w", str(media_ws))
    assert code == 2 and "no longer matches" in out["error"]
    assert read_env_file(media_ws / ".env")["MOBIUS_LIBRARY_DIR"] == str(target)


def test_finalize_refuses_a_damaged_target_and_keeps_the_source(mobius, media_ws: Path, tmp_path: Path):
    target = tmp_path / "new"
    migration = _migrated(mobius, media_ws, target)
    before = snapshot(media_ws / "uploads")
    _flip_a_byte(target / "scans" / "scan 2 é.raw")
    proc = mobius("media", "finalize", migration, "--yes", "-w", str(media_ws))
    assert proc.returncode == 2
    assert "changed: scans/scan 2 é.raw" in proc.stderr
    assert snapshot(media_ws / "uploads") == before


def test_finalize_asks_then_removes_the_verified_source(mobius, media_ws: Path, tmp_path: Path):
    target = tmp_path / "new"
    migration = _migrated(mobius, media_ws, target)
    proc = mobius("media", "finalize", migration, "-w", str(media_ws))
    assert proc.returncode == 1 and "--yes" in proc.stderr
    assert (media_ws / "uploads").is_dir()
    code, out = mobius.json("media", "finalize", migration, "--yes", "-w", str(media_ws))
    assert code == 0 and out["target_check"]["checked"] > 0
    assert not (media_ws / "uploads").exists()
    code, out = mobius.json("media", "migrate", "--to", str(target), "--no-backup", "--yes", "-w", str(media_ws))
    assert code == 0 and out["nothing_to_do"] is True


def test_rollback_killed_after_switching_back_is_finished_by_running_it_again(mobius, media_ws: Path, tmp_path: Path):
    _migrated(mobius, media_ws, tmp_path / "new")
    Paused(media_ws, ["media", "rollback"], "rolled-back").kill()
    assert read_env_file(media_ws / ".env")["MOBIUS_LIBRARY_DIR"] == "uploads"
    code, out = mobius.json("media", "rollback", "-w", str(media_ws))
    assert code == 0 and out["migration"]["status"] == "rolled-back" and out["verify"]["verified"] is True


def test_remigrating_never_overwrites_edits_made_at_the_live_target(mobius, media_ws: Path, tmp_path: Path):
    """Issue 13 item 2: migrate, edit the live target, roll back, migrate again: refused, the edit kept."""
    target = tmp_path / "new"
    _migrated(mobius, media_ws, target)
    edited = target / "scans" / "scan 2 é.raw"
    edited.write_bytes(b"edited in the live library")
    code, out = mobius.json("media", "rollback", "-w", str(media_ws))
    assert code == 0, out
    proc = mobius("media", "migrate", "--to", str(target), "--no-backup", "--yes", "-w", str(media_ws))
    assert proc.returncode == 2 and "changed since migration" in proc.stderr and "nothing was copied" in proc.stderr
    assert "changed at the target since it was copied: scans/scan 2 é.raw" in proc.stderr
    assert edited.read_bytes() == b"edited in the live library"
    assert read_env_file(media_ws / ".env")["MOBIUS_LIBRARY_DIR"] == "uploads"


def test_remigrating_after_a_manual_switch_back_keeps_the_targets_edits_and_new_files(mobius, media_ws: Path,
                                                                                      tmp_path: Path):
    target = tmp_path / "new"
    _migrated(mobius, media_ws, target)
    (target / "scans" / "scan 1 é.raw").write_bytes(b"edited")
    (target / "added at the target.png").write_bytes(b"new")
    (media_ws / "uploads" / "added at the target.png").write_bytes(b"other bytes at the source")
    assert mobius("config", "set", "MOBIUS_LIBRARY_DIR", "uploads", "-w", str(media_ws)).returncode == 0
    proc = mobius("media", "migrate", "--to", str(target), "--no-backup", "--yes", "-w", str(media_ws))
    assert proc.returncode == 2, proc.stderr
    assert "at the target but never copied there: added at the target.png" in proc.stderr
    assert (target / "scans" / "scan 1 é.raw").read_bytes() == b"edited"
    assert (target / "added at the target.png").read_bytes() == b"new"


def test_finalize_of_an_edited_target_does_not_send_the_user_to_rollback(mobius, media_ws: Path, tmp_path: Path):
    target = tmp_path / "new"
    migration = _migrated(mobius, media_ws, target)
    (target / "scans" / "scan 2 é.raw").write_bytes(b"edited in the live library")
    code, out = mobius.json("media", "finalize", migration, "--yes", "-w", str(media_ws))
    assert code == 2 and "nothing was deleted" in out["error"]
    assert "mobius media rollback" not in out["error"]


def test_target_check_report_names_each_damaged_file(tmp_path: Path):
    import pytest

    from mobius.errors import VerificationError
    from mobius.media import build_manifest, verify_destination
    from mobius.media.local_destination import LocalDestination

    target = tmp_path / "target"
    target.mkdir()
    (target / "a.raw").write_bytes(b"a" * 100)
    (target / "b.raw").write_bytes(b"b" * 100)
    build_manifest(target, tmp_path / "target.sha256")
    assert verify_destination(LocalDestination(target), tmp_path / "target.sha256").report().ok
    _flip_a_byte(target / "a.raw")
    check = verify_destination(LocalDestination(target), tmp_path / "target.sha256")
    failures = check.report().failures()
    assert [(c.name, c.detail) for c in failures] == [("media.target", "changed: a.raw (sha256 differs)")]
    with pytest.raises(VerificationError) as caught:
        check.raise_if_failed()
    assert caught.value.exit_code == 2 and "does not match its manifest" in caught.value.message
