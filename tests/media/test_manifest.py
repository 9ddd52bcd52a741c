"""`mobius media manifest` and `verify`: sha256sum-compatible, every difference named."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_manifest_and_verify_on_the_dask_executor_equal_the_local_ones(mobius, media_ws: Path, tmp_path: Path):
    """Issue 22 item 7: the same manifest bytes whichever executor hashed (more files than one batch)."""
    library = media_ws / "uploads"
    (library / "many").mkdir()
    for n in range(1200):  # three batches of DEFAULT_BATCH on Dask
        (library / "many" / f"card {n:04}.png").write_bytes(n.to_bytes(4, "big") * (n % 7 + 1))
    (library / "many" / "new\nline.png").write_bytes(b"escaped name")
    manifests = {}
    for kind in ("local", "dask"):
        manifests[kind] = tmp_path / f"{kind}.sha256"
        proc = mobius("-v", "media", "manifest", "--out", str(manifests[kind]), "-w", str(media_ws),
                      env={"MOBIUS_EXECUTOR": kind})
        assert proc.returncode == 0, proc.stderr
        assert ("executor.started executor=dask" in proc.stderr) == (kind == "dask")  # really hashed there
    assert manifests["dask"].read_bytes() == manifests["local"].read_bytes()
    assert manifests["local"].read_text().count("\n") > 1200
    with open(library / "many" / "card 0007.png", "r+b") as handle:
        handle.write(b"X")
    proc = mobius("-v", "media", "verify", "--against", str(manifests["local"]), "--executor", "dask",
                  "-w", str(media_ws))  # the option, where manifest above took the setting
    assert "executor.started executor=dask" in proc.stderr
    assert proc.returncode == 2 and "changed: many/card 0007.png (sha256 differs)" in proc.stderr


def test_verification_report_names_each_damaged_file(tmp_path: Path):
    from mobius.errors import VerificationError
    from mobius.media import build_manifest, verify_against

    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "a.raw").write_bytes(b"a" * 100)
    (folder / "b.raw").write_bytes(b"b" * 100)
    build_manifest(folder, tmp_path / "lib.sha256")
    assert verify_against(folder, tmp_path / "lib.sha256").report().ok
    with open(folder / "b.raw", "r+b") as handle:
        handle.write(b"X")
    result = verify_against(folder, tmp_path / "lib.sha256")
    failures = result.report().failures()
    assert [(c.name, c.detail) for c in failures] == [("media.verify", "changed: b.raw (sha256 differs)")]
    with pytest.raises(VerificationError) as caught:
        result.raise_if_failed()
    assert caught.value.exit_code == 2 and "1 changed" in caught.value.message
