"""The new archive is checked member by member (beside the write by a checker process when its
members are small, after the write otherwise) and its bytes re-read from the device: any failure
refuses the backup and leaves no archive. Both ways are run here (the thresholds forced)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from mobius.backup import archive as archive_module
from mobius.backup import verify_archive, write_archive, write_check
from mobius.backup.compression import PLAIN
from mobius.errors import VerificationError


@pytest.fixture(params=["streamed", "after"])
def mode(request, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(write_check, "STREAM_BELOW", 1 << 62 if request.param == "streamed" else 0)
    monkeypatch.setattr(write_check, "STREAM_FROM_FILES", 1)
    return request.param


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_passing_archive_matches_a_deep_verify(tree: Path, tmp_path: Path, mode: str) -> None:
    result = write_archive(tree, tmp_path / "backups", "mobius_library", codec=PLAIN)
    deep = verify_archive(result.path, deep=True)
    assert result.verified and deep.ok and deep.sha256 == result.sha256
    assert result.files == deep.files > 0 and result.verify_seconds is not None


def test_a_header_the_writer_got_wrong_is_caught_and_nothing_is_kept(tree: Path, tmp_path: Path, mode: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer bug (one member's mode written as 0o600 while the manifest says otherwise) is found by
    the check made while writing: the backup fails with the member named, and no archive remains."""
    real = archive_module._ustar_header

    def wrong_mode(name, kind, size, mode, mtime, linkname):
        return real(name, kind, size, 0o600 if name.endswith("big.bin") else mode, mtime, linkname)

    monkeypatch.setattr(archive_module, "_ustar_header", wrong_mode)
    backups = tmp_path / "backups"
    with pytest.raises(VerificationError) as caught:
        write_archive(tree, backups, "mobius_library", codec=PLAIN)
    assert caught.value.exit_code == 2
    assert any("library/big.bin (mode 600 != manifest" in line for line in caught.value.details), \
        caught.value.details
    assert [n for n in _left(backups) if not n.startswith(".mobius-")] == []


def test_a_checker_that_dies_fails_the_backup(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker process is killed (SIGKILL) after the first block: the backup fails, nothing is kept."""
    monkeypatch.setattr(write_check, "STREAM_BELOW", 1 << 62)
    monkeypatch.setattr(write_check, "STREAM_FROM_FILES", 1)
    feed = write_check.WriteCheck.feed

    def kill_then_feed(self, data) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        feed(self, data)

    monkeypatch.setattr(write_check.WriteCheck, "feed", kill_then_feed)
    backups = tmp_path / "backups"
    with pytest.raises(VerificationError, match="did not finish: killed by signal 9") as caught:
        write_archive(tree, backups, "mobius_library", codec=PLAIN)
    assert caught.value.exit_code == 2
    assert [n for n in _left(backups) if not n.startswith(".mobius-")] == []


def test_bytes_that_differ_on_the_device_fail_the_backup(tree: Path, tmp_path: Path, mode: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """One byte of the fsynced archive changes on disk before the re-read (the stream itself was
    fine): the re-read from the device catches it, and no archive is kept."""
    close = archive_module._ArchiveFile.close

    def close_then_damage(self) -> str:
        sha256 = close(self)
        with open(self.path, "r+b") as handle:
            handle.seek(self.size // 2)
            byte = handle.read(1)
            handle.seek(self.size // 2)
            handle.write(bytes([byte[0] ^ 0x10]))
            handle.flush()
            os.fsync(handle.fileno())
        return sha256

    monkeypatch.setattr(archive_module._ArchiveFile, "close", close_then_damage)
    backups = tmp_path / "backups"
    with pytest.raises(VerificationError) as caught:
        write_archive(tree, backups, "mobius_library", codec=PLAIN)
    assert caught.value.exit_code == 2
    assert any("the re-read file's sha256" in line for line in caught.value.details), caught.value.details
    assert [n for n in _left(backups) if not n.startswith(".mobius-")] == []


def _children() -> set[str]:
    """Our child processes, zombies included (the kernel's list for this process)."""
    found: set[str] = set()
    for task in Path("/proc/self/task").iterdir():
        found.update((task / "children").read_text().split())
    return found


def test_the_checker_leaves_no_process_behind(tree: Path, tmp_path: Path, mode: str) -> None:
    if not Path(f"/proc/self/task/{os.getpid()}/children").exists():
        pytest.skip("this kernel does not list child processes")
    before = _children()
    write_archive(tree, tmp_path / "backups", "mobius_library")
    assert _children() == before


def test_the_checker_program_reads_an_archive_on_stdin_and_says_nothing_else(tree: Path, tmp_path: Path) -> None:
    """The exact program create starts: a report on stdout, exit 0, and an empty stderr (a warning there,
    like runpy's for `-m` of a module its package imports, would become the error line of a failure)."""
    import pickle
    import subprocess
    import sys

    archive = write_archive(tree, tmp_path / "backups", "mobius_library", codec=PLAIN).path
    with open(archive, "rb") as stdin:
        proc = subprocess.run([sys.executable, "-c", write_check.CHECKER, str(archive)], stdin=stdin,
                              capture_output=True, env=write_check._checker_env(), timeout=120)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    report = pickle.loads(proc.stdout)
    assert report.ok and report.archive_bytes == archive.stat().st_size and report.files > 0
