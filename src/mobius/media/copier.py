"""Copy one file: hash while reading, write it (see the destination's `writer`: a temp name, or the
final name in a local target that was never live), make it durable, re-read it from the device,
and only then publish it and report it complete.

A file whose bytes at the destination differ from what was read, or whose source changed while
it was copied, is removed and never reported complete (never journaled).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mobius.faults import FaultHooks
from mobius.media.destination import Destination, Stored
from mobius.safety.hashing import CHUNK
from mobius.safety.tree import FILE, Entry

SOURCE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

CHANGED = "changed during the copy (size or mtime differs between copy and verify); run again"


@dataclass(slots=True)
class CopyOutcome:
    """`source` is the file as it was when opened (`ctime_ns` its ctime then); `error` is None when it
    was copied and verified."""

    source: Entry
    digest: str | None = None
    dst_digest: str | None = None
    stored: Stored | None = None
    error: str | None = None
    no_space: bool = False
    ctime_ns: int | None = None

    def row(self) -> tuple:
        return file_row(self.source, self.digest, self.dst_digest, self.stored, self.ctime_ns)


def file_row(source: Entry, digest: str | None, dst_digest: str | None, stored: Stored, ctime_ns: int | None) -> tuple:
    """A verified copy's journal row as a plain tuple (journal.COLUMNS order): a copy made here (CopyOutcome) or
    by a batch's worker process (batch._Copy), which sends its rows as they are."""
    return (source.path, FILE, source.size, source.mtime_ns, source.inode, source.mode, None, digest, stored.size,
            stored.token, dst_digest, ctime_ns, stored.ctime_ns)


Copied = tuple[list[tuple], list[CopyOutcome]]  # a batch's verified files as journal rows, and its failed ones


def split_outcomes(outcomes: Iterable[CopyOutcome]) -> Copied:
    rows, failed = [], []
    for outcome in outcomes:
        if outcome.error is None:
            rows.append(outcome.row())
        else:
            failed.append(outcome)
    return rows, failed


def copy_file(source_root: str, entry: Entry, dest: Destination, *, hooks: FaultHooks,
              on_bytes: Callable[[int], None] | None = None) -> CopyOutcome:
    path = os.path.join(source_root, entry.path)
    opened = open_source(path, entry)
    if isinstance(opened, str):
        return CopyOutcome(entry, error=opened)
    fd, before, ctime_ns = opened
    try:
        return _copy_open_file(fd, path, before, ctime_ns, dest, hooks, on_bytes)
    finally:
        os.close(fd)


def open_source(path: str, entry: Entry) -> tuple[int, Entry, int] | str:
    """Open a source file to copy it: never through a symlink, never blocking on a FIFO.

    Returns (fd, the entry as the open file is now, its ctime) for the caller to close, or the
    reason it cannot be copied (the one wording both copy paths report).
    """
    try:
        fd = os.open(path, SOURCE_FLAGS)
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        return f"unreadable: {exc.strerror}"
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return "unreadable: no longer a regular file"
    return fd, Entry(entry.path, FILE, st.st_size, st.st_mtime_ns, st.st_ino, stat.S_IMODE(st.st_mode)), st.st_ctime_ns


def unchanged(before: Entry, ctime_ns: int, after: os.stat_result) -> bool:
    """The source still is the file that was opened: same size, mtime, inode and ctime."""
    return (after.st_size, after.st_mtime_ns, after.st_ino, after.st_ctime_ns) == (*before.identity, ctime_ns)


def _copy_open_file(fd: int, path: str, before: Entry, ctime_ns: int, dest: Destination, hooks: FaultHooks,
                    on_bytes: Callable[[int], None] | None) -> CopyOutcome:
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    try:
        writer = dest.writer(before.path)
    except OSError as exc:
        return CopyOutcome(before, error=f"cannot write at the target: {exc.strerror}",
                           no_space=exc.errno in (errno.ENOSPC, errno.EDQUOT))
    try:
        digest = hashlib.sha256()
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        total = 0
        while True:
            try:
                count = os.readv(fd, [buffer])
            except OSError as exc:
                writer.abort()
                return CopyOutcome(before, error=f"unreadable: {exc.strerror}")
            if not count:
                break
            digest.update(view[:count])
            writer.write(view[:count])
            total += count
            if on_bytes:
                on_bytes(count)
            hooks.chunk()
            if total == count:
                hooks.reached("copy", before.path)
        writer.seal(before.mode, before.mtime_ns)
        hooks.reached("verify", before.path)
        again = writer.read_back()
        after = os.stat(path, follow_symlinks=False)
        if not unchanged(before, ctime_ns, after) or total != before.size:
            writer.abort()
            return CopyOutcome(before, error=CHANGED)
        source_digest = digest.hexdigest()
        if again != source_digest:
            writer.abort()
            return CopyOutcome(before, error="verification failed: the bytes re-read at the target differ")
        hooks.reached("publish", before.path)
        stored = writer.publish()
        return CopyOutcome(before, source_digest, again, stored, ctime_ns=ctime_ns)
    except OSError as exc:
        writer.abort()
        where = "source" if exc.filename == path else "target"
        return CopyOutcome(before, error=f"{where} error: {exc.strerror or exc}",
                           no_space=exc.errno in (errno.ENOSPC, errno.EDQUOT))
    except Exception as exc:  # noqa: BLE001 - object-store client errors are not OSErrors
        writer.abort()
        return CopyOutcome(before, error=f"target error: {type(exc).__name__}: {exc}")
