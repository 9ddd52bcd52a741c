"""Copy many files to a local folder in batches, with the guarantees of one-file-at-a-time.

For a batch (up to BATCH_FILES files or BATCH_BYTES):
  1. write   each file, hashing the source while reading it (a small file is one read and one
             write; a window of source files asked for ahead, so a cold source is read from the
             device a window at a time), mode and mtime set: under its final name in a target that was never the
             live library (`in_place`), else under a temp name;
  2. sync    all of them with one syncfs of the target file system (or an fsync each);
  3. verify  each: drop its (now clean) cached pages, re-read it from the device (a window of
             files in flight at once), compare the sha256, and stat the source again (a file
             changed meanwhile is removed, not journaled);
  4. publish rename each verified temp file to its final name (not in place; steps 3 and 4 on the pool).
The caller then fsyncs the folders and commits the batch's journal rows in one transaction. A
kill anywhere leaves files without a journal row (rewritten by the next run) or temp files
(removed by the next command): nothing is recorded before it is durable and verified.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import secrets
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from operator import attrgetter
from typing import TYPE_CHECKING

from mobius.config import setting
from mobius.faults import FaultHooks
from mobius.media.copier import CHANGED, Copied, CopyOutcome, file_row, open_source, split_outcomes, unchanged
from mobius.media.destination import Stored
from mobius.media.local_destination import create_over
from mobius.safety.atomic import TEMP_PREFIX, sync_filesystem, write_all
from mobius.safety.hashing import CHUNK, sha256_fd
from mobius.safety.tree import FILE, Entry

if TYPE_CHECKING:
    from mobius.media.copy_processes import CopyProcesses

BATCH_FILES = setting("media_batch_files")
BATCH_BYTES = 128 << 20
VERIFY_WINDOW = 256  # files whose re-read is in flight at once
READ_WINDOW = 64  # source files whose read is asked for ahead, per thread
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@dataclass(slots=True)
class _Copy:
    """One file of a batch: the source as opened, its temp and final names, what was hashed."""

    source: Entry
    temp: str = ""
    final: str = ""
    digest: str | None = None
    error: str | None = None
    no_space: bool = False
    dst_digest: str | None = None
    stored: Stored | None = None
    ctime_ns: int = 0

    def outcome(self) -> CopyOutcome:
        return CopyOutcome(self.source, self.digest, self.dst_digest, self.stored, self.error, self.no_space,
                           self.ctime_ns)

    def row(self) -> tuple:
        return file_row(self.source, self.digest, self.dst_digest, self.stored, self.ctime_ns)


_ENTRY_FIELDS = attrgetter(*(f.name for f in fields(Entry)))


def to_wire(entries: list[Entry]) -> list[tuple]:
    """Entries as plain tuples, for a worker process's pipe: pickling a slotted dataclass calls Python per
    object (the executor's threads spent a worker's whole CPU on it at 100,000 files), a tuple does not."""
    return list(map(_ENTRY_FIELDS, entries))


def from_wire(wire: list[tuple]) -> list[Entry]:
    return [Entry(*item) for item in wire]


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class LocalBatchCopier:
    """Runs the four steps above over slices of the batch: write and verify on the worker processes when
    it has some (`processes`, copy_processes.py), else on `workers` threads of `pool`."""

    def __init__(self, source_root: str, target_root: str, *, hooks: FaultHooks, pool: ThreadPoolExecutor | None,
                 workers: int, on_bytes: Callable[[int], None] | None = None, in_place: bool = False):
        self.src = source_root
        self.dst = target_root
        self.hooks = hooks
        self.pool = pool
        self.workers = workers
        self.on_bytes = on_bytes
        self.tag = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.counter = itertools.count()
        self.fsync_each = setting("media_sync") == "fsync"
        self.umask = _current_umask()
        self.in_place = in_place
        self.processes: CopyProcesses | None = None  # write and re-read on these, when set (copy_processes.py)

    def copy(self, entries: list[Entry]) -> Copied:
        return self.start(entries)()

    def start(self, entries: list[Entry]) -> Callable[[], Copied]:
        """Start copying a batch; the returned call waits for its outcomes: (journal rows of the verified
        files, the failed ones).

        On the worker processes each takes a slice through all its steps (`copy_slice`), so the call
        returns at once and the caller may start the next batch before journaling this one; on threads
        the batch is copied before this returns.
        """
        if not self._on_workers(entries):
            copies = self._threaded(entries)
            return lambda: split_outcomes(c.outcome() for c in copies)
        jobs = [self.processes.submit(part) for part in self._slices(entries, self.processes.processes)]

        def outcomes() -> Copied:
            rows: list[tuple] = []
            failed: list[CopyOutcome] = []
            for done, errors in map(self.processes.result, jobs):
                rows += done
                failed += (CopyOutcome(Entry(*entry), error=error, no_space=no_space)
                           for entry, error, no_space in errors)
            if self.on_bytes:  # the workers' progress, reported here
                self.on_bytes(sum(row[2] for row in rows))
            return rows, failed

        return outcomes

    def slice_job(self, wire: list[tuple]) -> tuple[list[tuple], list[tuple]]:
        """A worker's job: `copy_slice` over entries from the pipe. Returns the verified files as journal rows
        and the failed ones as (entry fields, error, no_space): plain tuples, which the parent journals as
        they are (objects per file cost its one interpreter about 1 s per 100,000 files)."""
        rows, failed = [], []
        for copy in self.copy_slice(from_wire(wire)):
            if copy.error is None:
                rows.append(copy.row())
            else:
                failed.append((_ENTRY_FIELDS(copy.source), copy.error, copy.no_space))
        return rows, failed

    def copy_slice(self, entries: list[Entry]) -> list[_Copy]:
        """All four steps over one slice, in this process (a worker's whole job for its part of a batch):
        no hand-over between the steps, and the slices of the other workers never wait for this one.
        The sync covers this slice's files (a `syncfs` also anything else written by then)."""
        copies = self._write_ahead(entries)
        written = [c for c in copies if c.error is None]
        if written:
            self._sync(written)
            self._verify_and_publish(written)  # in place: `copies` holds the verified ones
        return copies

    def _threaded(self, entries: list[Entry]) -> list[_Copy]:
        """The steps over a batch on the threads: all writes, one sync, then all re-reads."""
        copies = self._map(self._write_ahead, entries, whole=True)
        written = [c for c in copies if c.error is None]
        if written:
            self._sync(written, threads=True)
            self._map(self._verify_and_publish, written, whole=True)
        return copies

    def _sync(self, written: list[_Copy], *, threads: bool = False) -> None:
        if self.fsync_each or not sync_filesystem(self.dst):
            if threads:
                self._map(self._fsync, written)
            else:
                for copy in written:
                    self._fsync(copy)

    def _on_workers(self, items: list) -> bool:
        return self.processes is not None and len(items) >= 8

    def _map(self, function: Callable, items: list, *, whole: bool = False) -> list:
        """function over items, in `workers` contiguous slices; `whole`: function takes a slice."""
        each = function if whole else (lambda part: [function(item) for item in part])
        if self.workers <= 1 or len(items) < 8:
            return each(items)
        return list(itertools.chain.from_iterable(self.pool.map(each, self._slices(items, self.workers))))

    @staticmethod
    def _slices(items: list, count: int) -> list[list]:
        step = -(-len(items) // count)
        return [items[i:i + step] for i in range(0, len(items), step)]

    def _temp_for(self, final: str) -> str:
        slash = final.rfind("/")
        name = f"{TEMP_PREFIX}{self.tag}-{next(self.counter)}-{final[slash + 1:]}"[:255]
        return f"{final[:slash]}/{name}"

    def _write_ahead(self, entries: list[Entry]) -> list[_Copy]:
        """Write a slice, its source files opened and their pages asked for a window ahead.

        Reading small cold files one by one waits on the device once per file; asking for a
        window's pages first lets it serve them together (as the verification's re-read does).
        """
        copies: list[_Copy] = []
        for start in range(0, len(entries), READ_WINDOW):
            window = entries[start:start + READ_WINDOW]
            opened: list = []
            try:
                for entry in window:
                    opened.append(self._open_ahead(entry))
                for index, entry in enumerate(window):
                    ahead, opened[index] = opened[index], None  # _write closes it, whatever happens
                    copies.append(self._write(entry, ahead))
            finally:
                for left in opened:
                    if isinstance(left, tuple):
                        os.close(left[0])
        return copies

    def _open_ahead(self, entry: Entry) -> tuple[int, Entry, int] | str:
        opened = open_source(f"{self.src}/{entry.path}", entry)
        if not isinstance(opened, str) and 0 < opened[1].size < CHUNK:
            with contextlib.suppress(OSError):  # advice only
                os.posix_fadvise(opened[0], 0, 0, os.POSIX_FADV_WILLNEED)
        return opened

    def _write(self, entry: Entry, opened: tuple[int, Entry, int] | str) -> _Copy:
        """Write one source file opened by `_open_ahead` (closes it)."""
        path = f"{self.src}/{entry.path}"
        if isinstance(opened, str):
            return _Copy(entry, error=opened)
        fd, before, ctime_ns = opened
        try:
            final = f"{self.dst}/{entry.path}"
            copy = _Copy(before, final if self.in_place else self._temp_for(final), final, ctime_ns=ctime_ns)
            # created with its final mode when the umask keeps it (saves an fchmod per file); 600 otherwise
            direct = before.mode & 0o777 & ~self.umask == before.mode
            try:
                out = create_over(copy.temp, WRITE_FLAGS, before.mode if direct else 0o600) if self.in_place \
                    else os.open(copy.temp, WRITE_FLAGS, before.mode if direct else 0o600)
            except OSError as exc:
                copy.error, copy.no_space = f"cannot write at the target: {exc.strerror}", exc.errno in NO_SPACE
                return copy
            try:
                copy.digest, total = self._stream(fd, out, before)
                if not direct:
                    os.fchmod(out, before.mode)
                os.utime(out, ns=(before.mtime_ns, before.mtime_ns))
            except OSError as exc:
                where = "source" if exc.filename == path else "target"
                copy.error = f"{where} error: {exc.strerror or exc}"
                copy.no_space = exc.errno in NO_SPACE
            finally:
                os.close(out)
            if copy.error is None and total != before.size:
                copy.error = CHANGED
            if copy.error is not None:
                _unlink(copy.temp)
            return copy
        finally:
            os.close(fd)

    def _stream(self, fd: int, out: int, before: Entry) -> tuple[str, int]:
        """Copy fd to out, hashing what was read; a small file is one read and one write."""
        if before.size < CHUNK:
            data = os.read(fd, before.size + 1)
            write_all(out, data)
            self._progress(before.path, len(data))
            if len(data) <= before.size:
                return hashlib.sha256(data).hexdigest(), len(data)
            digest, total = hashlib.sha256(data), len(data)
        else:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            digest, total = hashlib.sha256(), 0
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while count := os.readv(fd, [buffer]):
            digest.update(view[:count])
            write_all(out, view[:count])
            total += count
            self._progress(before.path, count, first=total == count)
        return digest.hexdigest(), total

    def _progress(self, path: str, count: int, *, first: bool = True) -> None:
        if self.on_bytes:
            self.on_bytes(count)
        self.hooks.chunk()
        if first:
            self.hooks.reached("copy", path)

    @staticmethod
    def _fsync(copy: _Copy) -> None:
        fd = os.open(copy.temp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _verify_and_publish(self, copies: list[_Copy]) -> list[_Copy]:
        """Verify durable copies a window at a time, renaming each verified one to its final name.

        Re-reading small files one by one waits on the device once per file; asking for a window's
        pages ahead (after dropping the cached ones) lets the device serve them together, about 3x
        faster on a virtual disk, and every byte hashed still comes from the device.
        """
        for start in range(0, len(copies), VERIFY_WINDOW):
            window = copies[start:start + VERIFY_WINDOW]
            opened = [self._open_uncached(copy) for copy in window]
            for copy, fd in zip(window, opened, strict=True):
                if fd is not None:
                    self._verify(copy, fd)
                if copy.error is None:
                    self._publish(copy)
        return copies

    def _open_uncached(self, copy: _Copy) -> int | None:
        """Open a durable temp file, drop its cached pages and start reading them back from the device."""
        try:
            fd = os.open(copy.temp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            copy.error = f"verification failed: {exc.strerror or exc}"
            _unlink(copy.temp)
            return None
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        return fd

    def _verify(self, copy: _Copy, fd: int) -> None:
        """Hash the re-read temp file; publishable only if it and the source still agree. Closes fd."""
        self.hooks.reached("verify", copy.source.path)
        before = copy.source
        try:
            try:
                again = sha256_fd(fd, before.size)
                st = os.fstat(fd)
            finally:
                os.close(fd)
            after = os.stat(f"{self.src}/{before.path}", follow_symlinks=False)
        except OSError as exc:
            copy.error = f"verification failed: {exc.strerror or exc}"
            _unlink(copy.temp)
            return
        if not unchanged(before, copy.ctime_ns, after):
            copy.error = CHANGED
        elif again != copy.digest:
            copy.error = "verification failed: the bytes re-read at the target differ"
        if copy.error is not None:
            _unlink(copy.temp)
            return
        copy.dst_digest = again
        copy.stored = Stored(before.path, FILE, st.st_size, f"{st.st_mtime_ns}:{st.st_ino}", ctime_ns=st.st_ctime_ns)

    def _publish(self, copy: _Copy) -> None:
        self.hooks.reached("publish", copy.source.path)
        if self.in_place:
            return  # already under its final name; its journal row is what makes it complete
        try:
            try:
                os.rename(copy.temp, copy.final)
            except IsADirectoryError:
                shutil.rmtree(copy.final)
                os.rename(copy.temp, copy.final)
            # a rename moves the file's ctime: the journal keeps the one it has under its final name
            copy.stored = replace(copy.stored, ctime_ns=os.lstat(copy.final).st_ctime_ns)
        except OSError as exc:
            copy.error, copy.stored = f"target error: {exc.strerror or exc}", None
            _unlink(copy.temp)


def batches(entries: Iterable[Entry], *, max_files: int = BATCH_FILES,
            max_bytes: int = BATCH_BYTES) -> Iterable[list[Entry]]:
    """Consecutive groups of entries, each up to max_files files or max_bytes of file data."""
    batch: list[Entry] = []
    files = size = 0
    for entry in entries:
        batch.append(entry)
        if entry.kind == FILE:
            files += 1
            size += entry.size
        if files >= max_files or size >= max_bytes:
            yield batch
            batch, files, size = [], 0, 0
    if batch:
        yield batch
