"""Checking a new archive's members on the other core while it is written, then its bytes from the device.

A verify after writing parses the archive a second time on the same core that wrote it: for
100,000 small files that second pass cost as much as the write. Instead, every block the writer
puts in the archive file also goes down a pipe to a checker process, which checks every member
(`verify.check_stream`: the same checks as `backup verify --deep`) while the parent is still
writing. Once the archive is fsynced, its pages are dropped and every byte is re-read from the
device: the sha256 computed while writing means the file holds exactly the bytes the checker
read (a pipe delivers what was written; the checker counts them), so the result is that of a full
verify of the file, and is recorded as one.

The checker is a new interpreter (running `write_check.main`), not a fork: it uses
SQLite, and a fork taken while another thread of ours (a migration's monitor) holds one of
SQLite's locks would hang it. It reads the archive on stdin until the end, so it leaves when
the writer does, killed or not, and writes its pickled report on stdout. It runs for many small
members (`streamed`); otherwise the fsynced file is checked after the write, in the writer's
process, in one pass read from the device.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import subprocess
import sys
from pathlib import Path

import mobius
from mobius.backup.verify import VerifyReport, check_stream
from mobius.errors import VerificationError
from mobius.progress import NoProgress, Progress
from mobius.safety.atomic import write_all
from mobius.safety.hashing import hash_uncached

PIPE_BYTES = 1 << 20  # the writer runs up to this far ahead of the checker before it waits
STREAM_BELOW = 256 << 10  # average member size under which members are checked beside the write
STREAM_FROM_FILES = 1000  # fewer members are checked after the write, in this process
# the checker's program: `-c`, not `-m`, as the package imports this module (runpy would warn and run it twice)
CHECKER = "from mobius.backup.write_check import main; main()"


def _checker_env() -> dict[str, str]:
    """Our environment, with the folder mobius is imported from first on the checker's path."""
    here = str(Path(mobius.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": here if not path else f"{here}{os.pathsep}{path}"}


def streamed(files: int, total_bytes: int) -> bool:
    """Whether to check beside the write: for many small members, where parsing costs more than hashing
    (and more than starting the checker, about 0.1-0.2 s)."""
    return files >= STREAM_FROM_FILES and total_bytes / files < STREAM_BELOW


class WriteCheck:
    """`feed(data)` each block as it is written; `report(temp, sha256)` once the file is fsynced.

    Not `streamed` (large members, where hashing is the cost and a second process would only add
    copies through a pipe; or few members, where starting it costs more than it saves): the fsynced
    file is checked after the write, in this process, read from the device.
    """

    def __init__(self, path: Path, *, streamed: bool = True):
        self.path = path
        self._proc: subprocess.Popen | None = None
        self._pipe: int | None = None
        self.pid: int | None = None
        if streamed:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", CHECKER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, bufsize=0, env=_checker_env())
            self.pid = self._proc.pid
            self._pipe = self._proc.stdin.fileno()
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(self._pipe, fcntl.F_SETPIPE_SZ, PIPE_BYTES)

    def feed(self, data) -> None:
        """Hand the checker the block just written (blocks while it is more than a pipe behind)."""
        if self._pipe is not None:
            try:
                write_all(self._pipe, data)
            except BrokenPipeError:  # the checker stopped early: its report (or its absence) says why
                self.end_input()

    def end_input(self) -> None:
        if self._pipe is not None:
            self._pipe = None
            self._proc.stdin.close()
            self._proc.stdin = None  # communicate() must not flush it again

    def _finish(self) -> VerifyReport:
        proc, self._proc = self._proc, None
        out, err = proc.communicate()
        if proc.returncode != 0 or not out:
            last = err.decode("utf-8", "replace").strip().splitlines()[-1:]
            reason = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                      else last[0] if last else f"exit status {proc.returncode}")
            raise VerificationError(f"backup create: the check of {self.path.name} did not finish: {reason}",
                                    hint="run the backup again; the archive was not kept")
        return pickle.loads(out)

    def abandon(self) -> None:
        """The write failed: end the checker's input and wait for it, whatever it found."""
        self.end_input()
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self._finish()

    def report(self, temp: Path, sha256: str, progress: Progress | None = None) -> VerifyReport:
        """The checker's report on the archive, after every byte of `temp` (written and fsynced, with
        `sha256` computed while writing) is re-read from the device; raises VerificationError (exit 2)."""
        progress = progress or NoProgress()
        self.end_input()
        report = self._check_file(temp, progress) if self._proc is None else self._streamed_report(temp, progress)
        report.expected_sha256 = sha256
        if report.sha256 != sha256:
            report.problem("archive", f"the re-read file's sha256 {report.sha256} differs from the written {sha256}")
        if not report.ok:
            raise report.error()
        return report

    def _streamed_report(self, temp: Path, progress: Progress) -> VerifyReport:
        """The checker's report, its sha256 that of `temp` re-read from the device (while the checker
        finishes its last members and the comparison), and a problem if it read fewer bytes."""
        fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            progress.start(f"re-read {self.path.name}", total=size, unit="bytes")
            on_device = hash_uncached(fd, progress.advance, keep_cached=True)
            progress.finish()
        finally:
            os.close(fd)
        report = self._finish()
        report.sha256 = on_device
        if report.archive_bytes != size:
            report.problem("archive", f"the checker read {report.archive_bytes} bytes of the {size} written")
        return report

    def _check_file(self, temp: Path, progress: Progress) -> VerifyReport:
        """Every member of the fsynced file, read from the device (its clean cached pages dropped first)."""
        fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return check_stream(fd, self.path, hashed=True, progress=progress)


def main() -> None:
    """The checker: the archive's bytes on stdin, its pickled VerifyReport on stdout."""
    report = check_stream(sys.stdin.fileno(), Path(sys.argv[1]))
    sys.stdout.buffer.write(pickle.dumps(report, protocol=pickle.HIGHEST_PROTOCOL))
