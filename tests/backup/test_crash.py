"""A backup killed half-way leaves no archive under a final name, and the next one cleans up after it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mobius.backup import list_backups, verify_archive
from mobius.safety.atomic import TEMP_PREFIX


@pytest.mark.slow
def test_sigkill_during_create_leaves_only_a_temp_file_which_the_next_create_removes(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    library = ws / "uploads"
    library.mkdir(parents=True)
    for i in range(12):
        (library / f"clip-{i:02d}.mp4").write_bytes(os.urandom(24 << 20))
    (ws / ".env").write_text("MOBIUS_LIBRARY_DIR=uploads\n")
    backups = ws / "backups"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    proc = subprocess.Popen([sys.executable, "-m", "mobius", "backup", "create", "--archive", "-w", str(ws)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    temps: list[Path] = []
    while time.monotonic() < deadline and not temps:
        temps = [p for p in backups.glob(f"{TEMP_PREFIX}*") if p.is_file() and p.stat().st_size > 0]
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert temps, "the backup never started writing"
    assert list_backups(backups) == [], "an archive appeared under its final name before it was complete"
    assert not list(backups.glob("*.sha256")) and not list(backups.glob("*.log.jsonl"))

    again = subprocess.run([sys.executable, "-m", "mobius", "backup", "create", "--archive", "-w", str(ws)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert not list(backups.glob(f"{TEMP_PREFIX}*"))
    (backup,) = list_backups(backups)
    assert backup.state == "verified"
    verify_archive(backup.path).raise_if_failed()
