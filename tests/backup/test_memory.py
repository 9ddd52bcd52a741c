"""Memory stays flat: a library of many files costs no more memory than a small one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# VmHWM is this process's own peak (ru_maxrss would carry the forking pytest's peak over the exec).
PROBE = ("import sys; from mobius.cli.app import run; code = run(sys.argv[1:]); "
         "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
         "print(hwm, file=sys.stderr); sys.exit(code)")


def _peak_kib(*args: str) -> int:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stderr.strip().splitlines()[-1])


def _workspace(root: Path, files: int, size: int) -> Path:
    library = root / "uploads"
    for i in range(files):
        folder = library / f"game-{i % 40:02d}" / f"set-{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"card-{i:06d} ünïcode.png").write_bytes(os.urandom(size))
    (root / ".env").write_text("MOBIUS_LIBRARY_DIR=uploads\n")
    return root


@pytest.mark.slow
def test_create_and_verify_memory_does_not_grow_with_the_number_of_files(tmp_path: Path) -> None:
    peaks = {}
    for files, size in ((10_000, 100), (40_000, 100)):
        ws = _workspace(tmp_path / f"ws-{files}", files, size)
        created = _peak_kib("backup", "create", "--archive", "-w", str(ws))
        archive = next(p for p in (ws / "backups").iterdir() if p.name.endswith((".tar", ".tar.zst")))
        verified = _peak_kib("backup", "verify", str(archive), "-w", str(ws))
        peaks[files] = (created, verified)
    (small_create, small_verify), (big_create, big_verify) = peaks[10_000], peaks[40_000]
    # 30,000 more files: even 400 bytes kept per file would add 12 MB. (Media-like content, so the archive is
    # a plain tar: zstd's worker threads grow their buffers up to a fixed ~40 MB with the stream's length.)
    assert big_create - small_create < 12 * 1024, peaks
    assert big_verify - small_verify < 12 * 1024, peaks
