"""Damaged archives are detected, and each damaged or missing member is named (exit 2)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mobius.backup import restore_archive, verify_archive, write_archive
from mobius.backup.compression import PLAIN, ZSTD
from mobius.errors import VerificationError


def _archive(tree: Path, tmp_path: Path, codec=None) -> Path:
    return write_archive(tree, tmp_path / "backups", "mobius_library", codec=codec).path


def _problems(path: Path) -> list[str]:
    with pytest.raises(VerificationError) as caught:
        verify_archive(path).raise_if_failed()
    assert caught.value.exit_code == 2
    return caught.value.details


@pytest.mark.parametrize("codec", [PLAIN, ZSTD])
def test_flipped_bit_inside_a_file_names_that_file(tree: Path, tmp_path: Path, codec) -> None:
    archive = _archive(tree, tmp_path, codec)
    data = bytearray(archive.read_bytes())
    needle = (tree / "big.bin").read_bytes()[1_000_000:1_000_064]  # incompressible: stored as is
    offset = bytes(data).index(needle)
    data[offset + 10] ^= 0x04
    archive.write_bytes(bytes(data))
    problems = _problems(archive)
    assert "damaged: library/big.bin (sha256 differs)" in problems
    assert any(p.startswith("archive: sha256") and "differs from the sidecar" in p for p in problems)
    assert len([p for p in problems if p.startswith("damaged")]) == 1


@pytest.mark.parametrize("codec", [PLAIN, ZSTD])
def test_truncated_archive_names_the_files_it_lost(tree: Path, tmp_path: Path, codec) -> None:
    archive = _archive(tree, tmp_path, codec)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    problems = _problems(archive)
    assert any(p.startswith("damaged: archive unreadable at member library/big.bin") for p in problems), problems
    assert "missing: library/private/secret.txt" in problems
    assert "missing: library/tool.sh" in problems


def test_wrong_sidecar_is_detected_and_named(tree: Path, tmp_path: Path) -> None:
    archive = _archive(tree, tmp_path)
    sidecar = archive.with_name(archive.name + ".sha256")
    sidecar.write_text("0" * 64 + f"  {archive.name}\n")
    problems = _problems(archive)
    assert len(problems) == 1, problems
    assert problems[0].startswith("archive: sha256 ") and problems[0].endswith("differs from the sidecar's " + "0" * 64)


def test_missing_sidecar_fails_verification(tree: Path, tmp_path: Path) -> None:
    archive = _archive(tree, tmp_path)
    archive.with_name(archive.name + ".sha256").unlink()
    assert any("no sidecar" in p for p in _problems(archive))


def test_flipped_bit_in_compressed_data_is_detected(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    words = ["play", "a", "card", "pass", "the", "rest", "score", "maki", "rolls", "pudding", "wasabi", "nigiri"]
    rng = random.Random(3)
    (library / "rules.txt").write_text(" ".join(rng.choice(words) for _ in range(400_000)))
    archive = _archive(library, tmp_path, ZSTD)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x10
    archive.write_bytes(bytes(data))
    problems = _problems(archive)
    # Detected, always (exit 2 above, and the sidecar differs). Which member is named depends on where the
    # decompressor's read-ahead meets the damage: with the archive's headers' times, about one run in 20 it
    # fails while filling its first buffer and says "unreadable at its start" (seen in CI-like runs). When a
    # member is named, it is the one that holds the flipped bit.
    assert any(p.startswith("damaged: ") for p in problems), problems
    named = [p for p in problems if p.startswith("damaged: ") and "unreadable at its start" not in p]
    assert all("rules.txt" in p for p in named), problems


def test_restore_of_damaged_archive_writes_nothing(tree: Path, tmp_path: Path) -> None:
    archive = _archive(tree, tmp_path)
    data = archive.read_bytes()
    archive.write_bytes(data[:-5000])
    target = tmp_path / "target"
    with pytest.raises(VerificationError):
        restore_archive(archive, target)
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mobius-restore-")]


def test_verify_archive_returns_its_findings_as_a_report_and_raises_only_when_asked(tree: Path,
                                                                                    tmp_path: Path) -> None:
    """Can fail: verify_archive raised on a damaged archive, so a caller could not read its findings as a Report."""
    archive = _archive(tree, tmp_path)
    good = verify_archive(archive)
    assert good.ok and good.report().ok and good.raise_if_failed() is good
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    found = verify_archive(archive, deep=True)  # returns: the damage is a finding
    report = found.report()
    assert not found.ok and not report.ok
    assert [c.detail for c in report.failures()] == found.problems and found.problems
    with pytest.raises(VerificationError) as caught:
        found.raise_if_failed()
    assert caught.value.exit_code == 2 and caught.value.details == found.problems
