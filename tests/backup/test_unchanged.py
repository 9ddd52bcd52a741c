"""An archive whose members all passed once is re-verified by hashing every byte of it, and any
change to it (even one its sidecar was rewritten to match) is caught member by member."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mobius.backup import verify_archive, write_archive
from mobius.backup.catalog import log_path
from mobius.backup.compression import PLAIN
from mobius.errors import VerificationError

UNCHANGED = "sha256 unchanged since each member was checked"


def _verified_archive(tree: Path, tmp_path: Path) -> Path:
    result = write_archive(tree, tmp_path / "backups", "mobius_library", codec=PLAIN)
    assert result.verified  # every member was checked as it was written: the log says so
    last = _events(result.path)[-1]
    assert last["event"] == "backup.verified" and last["sha256"] == result.sha256 and last["member_checks"]
    return result.path


def _events(archive: Path) -> list[dict]:
    return [json.loads(line) for line in log_path(archive).read_text().splitlines()]


def test_unchanged_archive_is_hashed_whole_not_parsed_again(tree: Path, tmp_path: Path) -> None:
    archive = _verified_archive(tree, tmp_path)
    first = verify_archive(archive)  # the check made while writing counts: no member is parsed again
    assert any(UNCHANGED in note for note in first.notes), first.notes
    deep = verify_archive(archive, deep=True)
    again = verify_archive(archive)
    assert any(UNCHANGED in note for note in again.notes), again.notes
    assert again.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest() == deep.sha256
    assert (again.files, again.dirs, again.symlinks, again.bytes, again.extras) == \
           (deep.files, deep.dirs, deep.symlinks, deep.bytes, deep.extras)
    assert again.files > 0
    last = _events(archive)[-1]
    assert last["event"] == "backup.verified" and last["sha256"] == again.sha256


def test_changed_bytes_with_a_matching_sidecar_are_checked_member_by_member(tree: Path, tmp_path: Path) -> None:
    """Someone damages a member and rewrites the sidecar to the new sha256: the log's checked sha256
    no longer matches, so every member is parsed and the damaged one is named."""
    archive = _verified_archive(tree, tmp_path)
    data = bytearray(archive.read_bytes())
    offset = bytes(data).index((tree / "big.bin").read_bytes()[1_000_000:1_000_064])
    data[offset + 10] ^= 0x04
    archive.write_bytes(bytes(data))
    sidecar = archive.with_name(archive.name + ".sha256")
    sidecar.write_text(f"{hashlib.sha256(bytes(data)).hexdigest()}  {archive.name}\n")
    with pytest.raises(VerificationError) as caught:
        verify_archive(archive).raise_if_failed()
    assert "damaged: library/big.bin (sha256 differs)" in caught.value.details
    assert _events(archive)[-1]["event"] == "backup.verify_failed"


def test_after_a_failed_verify_members_are_checked_again(tree: Path, tmp_path: Path) -> None:
    archive = _verified_archive(tree, tmp_path)
    original = archive.read_bytes()
    archive.write_bytes(original[:-1024])  # truncated: fails
    with pytest.raises(VerificationError):
        verify_archive(archive).raise_if_failed()
    archive.write_bytes(original)  # put back: the last record is a failure, so every member is checked
    report = verify_archive(archive)
    assert not any(UNCHANGED in note for note in report.notes)
    assert any(UNCHANGED in note for note in verify_archive(archive).notes)


def test_cli_verify_deep_parses_every_member(tree: Path, tmp_path: Path, mobius) -> None:
    archive = _verified_archive(tree, tmp_path)
    quick = mobius("backup", "verify", str(archive), "--json")
    deep = mobius("backup", "verify", str(archive), "--deep", "--json")
    assert quick.returncode == 0 and deep.returncode == 0, quick.stderr + deep.stderr
    assert any(UNCHANGED in note for note in json.loads(quick.stdout)["notes"])
    assert not any(UNCHANGED in note for note in json.loads(deep.stdout)["notes"])
    assert json.loads(quick.stdout)["files"] == json.loads(deep.stdout)["files"] > 0
