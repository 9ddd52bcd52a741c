"""Checking a new archive's members on the other core while it is written, then its bytes from the device.

A verify after writing parses the archive a second time on the same core that wrote it: for
100,000 small files that second pass cost as much as the write. Instead, every block the writer
puts in the archive file also goes down a pipe to a forked child, which checks every member
(`verify.check_stream`: the same checks as `backup verify --deep`) while the parent is still
writing. Once the archive is fsynced, its pages are dropped and every byte is re-read from the
device: the same sha256 as the stream the child checked means the file holds exactly the bytes
that passed, so the result is that of a full verify of the file, and is recorded as one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from mobius.backup.verify import VerifyReport, check_stream
from mobius.errors import VerificationError
from mobius.progress import NoProgress, Progress
from mobius.safety.atomic import write_all
from mobius.safety.child import in_child
from mobius.safety.hashing import hash_uncached

PIPE_BYTES = 1 << 20  # the writer runs up to this far ahead of the checker before it waits


def _check_in_child(read_end: int, write_end: int, path: Path) -> VerifyReport:
    os.close(write_end)  # else the child holds the pipe open and never sees its end
    return check_stream(read_end, path)


class WriteCheck:
    """`feed(data)` each block as it is written; `report(temp, sha256)` once the file is fsynced."""

    def __init__(self, path: Path):
        self.path = path
        self._pipe: int | None = None
        self._result: Callable[[], VerifyReport] | None = None
        if hasattr(os, "fork"):
            read_end, self._pipe = os.pipe()
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(self._pipe, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            try:
                self._result = in_child(_check_in_child, read_end, self._pipe, path)
            finally:
                os.close(read_end)

    def feed(self, data) -> None:
        """Hand the checker the block just written (blocks while it is more than a pipe behind)."""
        if self._pipe is not None:
            try:
                write_all(self._pipe, data)
            except BrokenPipeError:  # the checker stopped early: its report (or its absence) says why
                self.end_input()

    def end_input(self) -> None:
        if self._pipe is not None:
            os.close(self._pipe)
            self._pipe = None

    def abandon(self) -> None:
        """The write failed: end the checker's input and wait for it, whatever it found."""
        self.end_input()
        if self._result is not None:
            with contextlib.suppress(Exception):
                self._result()
            self._result = None

    def report(self, temp: Path, sha256: str, progress: Progress | None = None) -> VerifyReport:
        """The checker's report on the archive, after every byte of `temp` (written and fsynced, with
        `sha256` computed while writing) is re-read from the device; raises VerificationError (exit 2)."""
        progress = progress or NoProgress()
        self.end_input()
        fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
        try:  # while the checker finishes its last members and the comparison
            progress.start(f"re-read {self.path.name}", total=os.fstat(fd).st_size, unit="bytes")
            on_device = hash_uncached(fd, progress.advance, keep_cached=True)
            progress.finish()
        finally:
            os.close(fd)
        if self._result is None:  # no fork on this platform: check the file itself
            report = check_stream(os.open(temp, os.O_RDONLY | os.O_CLOEXEC), self.path)
        else:
            try:
                report = self._result()
            except Exception as exc:  # noqa: BLE001 - any failure of the checker fails the backup
                raise VerificationError(f"backup create: the check of {self.path.name} did not finish: {exc}",
                                        hint="run the backup again; the archive was not kept") from None
            finally:
                self._result = None
        report.expected_sha256 = sha256
        for label, value in (("the checked stream's", report.sha256), ("the re-read file's", on_device)):
            if value != sha256:
                report.problem("archive", f"{label} sha256 {value} differs from the written {sha256}")
        if not report.ok:
            raise report.error()
        report.sha256 = on_device
        return report
