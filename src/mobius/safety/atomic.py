"""Atomic file replacement: write to a temp name in the same folder, fsync, rename, fsync the folder.

A reader (or a crash) sees either the old file or the complete new one, never a partial file
under the final name. Temp names start with TEMP_PREFIX so a later run can remove orphans
left by a killed process.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TEMP_PREFIX = ".mobius-tmp-"


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """os.write until every byte is written (a write may take fewer than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """os.pwrite at `offset` until every byte is written (the file offset is not used: threads may share `fd`)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def temp_name_for(path: Path) -> Path:
    """A unique temp path beside `path`, recognisable as ours."""
    return path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{path.name}"[:255])


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", *, file_mode: int | None = None,
                 encoding: str | None = None, durable: bool = True) -> Iterator[IO]:
    """Open a temp file for writing; on clean exit it replaces `path` durably, on error it vanishes.

    `file_mode` is set on the temp file before the first byte is written, so the data is never readable
    under a wider mode, not even under its temp name. `durable=False` is for a file the next run writes
    again anyway (a check's debug pictures): the rename still hides a half-written file, but nothing waits
    for the device (5 pictures of a failing golden check spent about 25 ms in fsync)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name_for(path)
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    handle = open(tmp, mode, encoding=encoding)  # noqa: SIM115 - closed below in every path
    try:
        if file_mode is not None:
            os.fchmod(handle.fileno(), file_mode)
        yield handle
        handle.flush()
        if durable:
            os.fsync(handle.fileno())
        handle.close()
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except BaseException:
        # closing flushes what is still buffered, which fails again on a full disk: the temp goes all the same
        with contextlib.suppress(OSError):
            handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes, *, file_mode: int | None = None) -> None:
    with atomic_write(path, "wb", file_mode=file_mode) as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str, *, file_mode: int | None = None) -> None:
    with atomic_write(path, "w", file_mode=file_mode) as handle:
        handle.write(text)


def _libc_syncfs():
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int]
    return function


_SYNCFS = _libc_syncfs()


def sync_filesystem(folder: str | Path) -> bool:
    """Make every written file of the file system holding `folder` durable in one call (Linux syncfs).

    One syncfs replaces an fsync per file when thousands of small files were just written;
    returns False where syncfs does not exist (then fsync each file).
    """
    if _SYNCFS is None:
        return False
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _SYNCFS(fd) != 0:
            import ctypes

            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(folder))
        return True
    finally:
        os.close(fd)
