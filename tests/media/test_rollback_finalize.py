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
