"""Process locks that cannot outlive their process: flock on an open file.

A killed process's lock is released by the kernel, so there is never a stale lock to clear
(the most frequent complaint about restic's and borg's lock files).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from mobius.errors import InputError


class FileLock:
    """Exclusive lock on `path` (`shared`: many holders at once, none while an exclusive one holds it);
    waits up to `timeout` seconds, then refuses (exit 1)."""

    def __init__(self, path: Path, *, timeout: float = 0.0, what: str = "this operation", shared: bool = False):
        self.path = path
        self.timeout = timeout
        self.what = what
        self.shared = shared
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise InputError(
                        f"another mobius process is running {self.what} (lock {self.path} is held)",
                        hint="wait for it to finish, then run again",
                    ) from None
                time.sleep(0.1)
        if not self.shared:  # holders of a shared lock would overwrite each other's pid
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
