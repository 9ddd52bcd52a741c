"""Temp files a killed `mobius media migrate` leaves in its target (issue 26, item 3): the next command on
the workspace removes them, and `media verify` of the target never counts them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from media_support import Paused, temps

from mobius.safety.atomic import TEMP_PREFIX

pytestmark = pytest.mark.slow

ARGS = ["media", "migrate", "--no-backup", "--yes"]


def _cards(library: Path, count: int, *, seed: int) -> None:
    rng = __import__("random").Random(seed)
    for i in range(count):
        folder = library / f"cards {i % 3}"
        folder.mkdir(exist_ok=True)
        (folder / f"card {i:04d}.webp").write_bytes(rng.randbytes(rng.randint(1024, 4096)))


def _killed_resync(mobius, ws: Path, target: Path) -> dict:
    """A completed migration, then the source edited and the same migrate (source kept as the library)
    killed while it replaces the live target's files: temp files are left in the target's sub-folders."""
    source = ws / "uploads"
    _cards(source, 120, seed=1)
    code, out = mobius.json(*ARGS, "--to", str(target), "-w", str(ws))
    assert code == 0, out
    _cards(source, 120, seed=2)
    run = Paused(ws, [*ARGS, "--to", str(target), "--workers", "1"], "publish:1",
                 env={"MOBIUS_LIBRARY_DIR": str(source)})
    run.kill()
    left = temps(target)
    assert left and all(Path(p).parent != target for p in left), "temps inside the target's sub-folders"
    return out["migration"]


@pytest.mark.parametrize("command", ["migrations", "verify", "rollback"])
def test_next_command_removes_a_killed_migrations_temps(mobius, media_ws: Path, tmp_path: Path, command: str):
    target = tmp_path / "new"
    record = _killed_resync(mobius, media_ws, target)
    args = {"migrations": ["media", "migrations"],
            "verify": ["media", "verify", str(target), "--against", record["target_manifest"]],
            "rollback": ["media", "rollback"]}[command]
    proc = mobius(*args, "-w", str(media_ws))
    assert "Traceback" not in proc.stderr
    assert not temps(target) and "temp files a killed media migration left" in proc.stderr
    if command == "verify":  # killed before any rename: the target is still exactly as verified
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_verify_never_counts_temps_of_a_running_migration(mobius, media_ws: Path, tmp_path: Path):
    """A temp file whose owner still runs stays (it is not a leftover) and is neither checked nor extra."""
    target = tmp_path / "new"
    code, out = mobius.json(*ARGS, "--to", str(target), "-w", str(media_ws))
    assert code == 0, out
    live = target / "scans" / f"{TEMP_PREFIX}{os.getppid()}-abc-0-scan 0 é.raw"
    live.write_bytes(b"being written")
    code, result = mobius.json("media", "verify", str(target), "--against", out["migration"]["target_manifest"],
                               "-w", str(media_ws))
    assert code == 0 and result["extra"] == [] and result["checked"] == out["migration"]["files"], result
    assert live.exists()


def test_resume_removes_the_temps_and_finishes(mobius, media_ws: Path, tmp_path: Path):
    target = tmp_path / "new"
    _killed_resync(mobius, media_ws, target)
    code, out = mobius.json(*ARGS, "--to", str(target), "-w", str(media_ws),
                            env={"MOBIUS_LIBRARY_DIR": str(media_ws / "uploads")})
    assert code == 0, out
    assert not temps(target)
