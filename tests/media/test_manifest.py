"""`mobius media manifest` and `verify`: sha256sum-compatible, every difference named."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

OLD = 1_600_000_000_000_000_000


def test_manifest_is_checked_by_sha256sum(mobius, media_ws: Path, tmp_path: Path):
    out_file = tmp_path / "lib.sha256"
    code, out = mobius.json("media", "manifest", "--out", str(out_file), "-w", str(media_ws))
    assert code == 0 and out["files"] > 40
    check = subprocess.run(["sha256sum", "-c", "--strict", str(out_file)], cwd=media_ws / "uploads",
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "link outside" not in out_file.read_text()  # never read through a symlink


def test_verify_names_missing_extra_and_changed_files(mobius, media_ws: Path, tmp_path: Path):
    library = media_ws / "uploads"
    out_file = tmp_path / "lib.sha256"
    assert mobius("media", "manifest", str(library), "--out", str(out_file), "-w", str(media_ws)).returncode == 0
    assert mobius("media", "verify", "--against", str(out_file), "-w", str(media_ws)).returncode == 0
    (library / "scans" / "scan 0 é.raw").unlink()
    (library / "new card.png").write_bytes(b"extra")
    with open(library / "scans" / "scan 1 é.raw", "r+b") as handle:
        handle.write(b"X")
    proc = mobius("media", "verify", "--against", str(out_file), "-w", str(media_ws))
    assert proc.returncode == 2
    assert "missing: scans/scan 0 é.raw" in proc.stderr
    assert "extra: new card.png" in proc.stderr
    assert "changed: scans/scan 1 é.raw (sha256 differs)" in proc.stderr


def test_trust_cache_reuses_hashes_of_unchanged_files_and_says_so(mobius, media_ws: Path, tmp_path: Path):
    library = media_ws / "uploads"
    for path in library.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.utime(path, ns=(OLD, OLD))
    out_file = tmp_path / "lib.sha256"
    code, made = mobius.json("media", "manifest", "--out", str(out_file), "-w", str(media_ws))
    assert code == 0
    proc = mobius("media", "verify", "--against", str(out_file), "--trust-cache", "-w", str(media_ws))
    assert proc.returncode == 0 and f"trusted {made['files']} cached hashes" in proc.stdout
    (library / "scans" / "scan 2 é.raw").write_bytes(b"rewritten")  # new size and mtime: cache not trusted
    proc = mobius("media", "verify", "--against", str(out_file), "--trust-cache", "-w", str(media_ws))
    assert proc.returncode == 2 and "changed: scans/scan 2 é.raw" in proc.stderr
    assert f"trusted {made['files'] - 1} cached hashes" in proc.stdout


def test_manifest_of_a_missing_folder_is_an_input_error(mobius, media_ws: Path, tmp_path: Path):
    code, out = mobius.json("media", "manifest", str(tmp_path / "nope"), "-w", str(media_ws))
    assert code == 1 and "not a folder" in out["error"]
