"""Writing an archive in one pass: every file read once, the archive written once.

Each file is hashed while its bytes are copied into the tar stream; the compressed stream is
hashed while it is written (on a writer thread, so the two hashes run on two cores). Nothing
is re-read to make the sidecar. The archive lives under a temporary name until it is complete,
fsynced and verified (every member checked as it was written, every byte re-read from the
device: see write_check); its sidecar and log are written first, so an archive under its final
name always has both, and its log records the passed check.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import queue
import tarfile
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobius.backup import catalog
from mobius.backup.buffers import BufferPool
from mobius.backup.compression import DEFAULT, PLAIN, Codec, Compressor, choose
from mobius.backup.manifest import DIR, FILE, MANIFEST_NAME, SUMS_NAME, ManifestEntry, header_line
from mobius.backup.tree import Listing, changed_while_read, open_as_listed, walk_tree
from mobius.backup.verify import record_members_checked
from mobius.backup.write_check import WriteCheck, streamed
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress
from mobius.safety.atomic import fsync_dir, temp_name_for, write_all
from mobius.safety.checksums import format_line
from mobius.safety.diskspace import require_free_space
from mobius.safety.hashing import CHUNK
from mobius.safety.leftovers import scratch_name
from mobius.safety.lock import FileLock
from mobius.safety.stamps import utc_compact

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
HEADER_ALLOWANCE = 3 * BLOCK  # tar header (+ a PAX header for long or non-ASCII names) per entry
LOCK_NAME = ".mobius-backup.lock"
BATCH = 256 << 10  # small headers and files travel the pipeline in batches of this size
SMALL_FILE = 64 << 10  # files under this are read with one os.read, no pool buffer
_TAR_TYPES = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE}


@dataclass
class BackupResult:
    """What `write_archive` / `create_backup` made. `bytes` counts file contents, `archive_bytes` the archive."""

    path: Path
    sha256: str
    files: int
    bytes: int
    seconds: float
    dirs: int = 0
    symlinks: int = 0
    archive_bytes: int = 0
    compression: str = DEFAULT.name
    sidecar: Path | None = None
    log: Path | None = None
    extras: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    verified: bool = False
    verify_seconds: float | None = None
    deleted: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "sha256": self.sha256, "files": self.files, "bytes": self.bytes,
            "seconds": round(self.seconds, 3), "dirs": self.dirs, "symlinks": self.symlinks,
            "archive_bytes": self.archive_bytes, "compression": self.compression, "sidecar": self.sidecar,
            "log": self.log, "extras": self.extras, "skipped": self.skipped, "verified": self.verified,
            "verify_seconds": None if self.verify_seconds is None else round(self.verify_seconds, 3),
            "deleted": self.deleted,
        }


class _Stage:
    """One step of the write pipeline on its own thread, fed through a bounded queue (memory stays flat)."""

    def __init__(self, name: str, step, finish=None):
        self._step = step
        self._finish = finish
        self._queue: queue.Queue[tuple | None] = queue.Queue(maxsize=16)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            if self._error is None:
                try:
                    self._step(*item)
                except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                    self._error = exc
        if self._error is None and self._finish is not None:
            try:
                self._finish()
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                self._error = exc

    def put(self, data, buffer: bytearray | None = None) -> None:
        """Queue `data`; `buffer` (the pooled buffer under it) goes back to the pool once written."""
        self.check()
        if data:
            self._queue.put((data, buffer))

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        self._error = self._error or RuntimeError("aborted")
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class _ArchiveFile:
    """The archive's bytes: compressed on one thread, hashed and written on another, and checked
    member by member by a checker process as they are written (`WriteCheck`).

    With the file hashes on the caller's thread, the three costs (sha256 of the files, compression,
    sha256 of the archive + write) overlap on two cores.
    """

    def __init__(self, final: Path, codec: Codec, *, streamed: bool):
        self.path = temp_name_for(final)
        self.members_check = WriteCheck(final, streamed=streamed)  # started first: it checks from the first block
        self.pool = BufferPool(12, CHUNK)
        try:
            # 0600: an archive holds .env and a database dump, so only its owner may read it
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except BaseException:
            self.members_check.abandon()
            raise
        self._digest = hashlib.sha256()
        self.size = 0
        self._writer = _Stage("archive-writer", self._write)
        self._compressor: Compressor | None = None
        self._compress_stage: _Stage | None = None
        if codec is not PLAIN:
            self._compressor = codec.compressor()
            self._compress_stage = _Stage("archive-compressor", self._compress,
                                          lambda: self._writer.put(self._compressor.flush()))

    def _compress(self, data, buffer: bytearray | None) -> None:
        out = self._compressor.compress(data)
        if buffer is not None:
            self.pool.give(buffer)
        self._writer.put(out)

    def _write(self, data, buffer: bytearray | None) -> None:
        self._digest.update(data)
        write_all(self._fd, data)
        self.members_check.feed(data)
        self.size += len(data)
        if buffer is not None:
            self.pool.give(buffer)

    def write(self, data, buffer: bytearray | None = None) -> None:
        (self._compress_stage or self._writer).put(data, buffer)

    def take_buffer(self) -> bytearray:
        return self.pool.take(self.check)

    def check(self) -> None:
        for stage in (self._compress_stage, self._writer):
            if stage is not None:
                stage.check()

    def close(self) -> str:
        """Drain the pipeline, fsync, return the sha256 of everything written."""
        try:
            if self._compress_stage is not None:
                self._compress_stage.close()
            self._writer.close()
            self.members_check.end_input()  # the checker finishes its last members while we fsync
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
        return self._digest.hexdigest()

    def abort(self) -> None:
        for stage in (self._compress_stage, self._writer):
            if stage is not None:
                stage.abort()
        self.members_check.abandon()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


_ZERO_ID = b"0000000\0"
_ZEROS = memoryview(bytes(BLOCK))


def _ustar_header(name: str, kind: bytes, size: int, mode: int, mtime: int, linkname: str) -> bytes | None:
    """The 512-byte header tarfile's PAX_FORMAT writes when every field fits plain ustar (no PAX
    record), built directly: most library members are short ASCII names. None otherwise."""
    if kind == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"
    if not (len(name) <= 100 and len(linkname) <= 100 and name.isascii() and linkname.isascii()
            and 0 <= size < 0o77777777777 and 0 <= mtime < 0o77777777777):
        return None
    head = b"".join((
        name.encode("ascii").ljust(100, b"\0"), b"%07o\0" % mode, _ZERO_ID, _ZERO_ID, b"%011o\0" % size,
        b"%011o\0" % mtime, b"        ", kind, linkname.encode("ascii").ljust(100, b"\0"), b"ustar\x0000",
        bytes(247)))
    return head[:148] + b"%06o\0" % _byte_sum(head) + head[155:]


def _byte_sum(head: bytes) -> int:
    """The sum of a plain ustar header's bytes (its checksum, spaces in the checksum field), from zlib's Adler-32:
    its low half is 1 + that sum modulo 65521, and an ASCII header (at most 200 name bytes of 127) sums to less
    than 29,000. `sum(head)` cost 2 us a header, 400,000 headers for 100,000 files (written, then checked)."""
    return (zlib.adler32(head) & 0xFFFF) - 1


class _TarStream:
    """tar records in, archive bytes out; small pieces batched so the pipeline moves in ~1 MiB steps."""

    def __init__(self, out: _ArchiveFile):
        self._out = out
        self._pending = bytearray()
        self._offset = 0

    def _emit(self, data, buffer: bytearray | None = None) -> None:
        """Send `data` on; a pooled `buffer` under it is handed over (or returned at once when copied)."""
        self._offset += len(data)
        if not self._pending and len(data) >= BATCH:
            self._out.write(data, buffer)
            return
        self._pending += data
        if buffer is not None:
            self._out.pool.give(buffer)
        if len(self._pending) >= BATCH:
            self._out.write(bytes(self._pending))
            self._pending.clear()

    def add(self, entry: ManifestEntry, size: int = 0) -> None:
        self._emit(self._header(entry, size))

    def add_small(self, entry: ManifestEntry, data: bytes) -> None:
        """A whole small file: header, bytes and padding appended at once (one step per file, not three)."""
        header = self._header(entry, len(data))
        padding = -len(data) % BLOCK
        self._pending += header
        self._pending += data
        self._pending += _ZEROS[:padding]
        self._offset += len(header) + len(data) + padding
        if len(self._pending) >= BATCH:
            self._out.write(bytes(self._pending))
            self._pending.clear()

    @staticmethod
    def _header(entry: ManifestEntry, size: int) -> bytes:
        kind = _TAR_TYPES.get(entry.type, tarfile.SYMTYPE)
        size = size if entry.type == FILE else 0
        header = _ustar_header(entry.path, kind, size, entry.mode & 0o7777, entry.mtime_ns // 1_000_000_000,
                               entry.target or "")
        if header is None:  # long or non-ASCII names, huge sizes: tarfile writes the PAX records
            info = tarfile.TarInfo(entry.path)
            info.type = kind
            info.size = size
            info.mode = entry.mode & 0o7777
            info.mtime = entry.mtime_ns // 1_000_000_000
            info.linkname = entry.target or ""
            info.uname = info.gname = ""
            header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        return header

    def data(self, chunk, buffer: bytearray | None = None) -> None:
        self._emit(chunk, buffer)

    def take_buffer(self) -> bytearray:
        return self._out.take_buffer()

    def pad(self) -> None:
        remainder = self._offset % BLOCK
        if remainder:
            self._emit(b"\0" * (BLOCK - remainder))

    def add_stream(self, entry: ManifestEntry, handle, size: int) -> None:
        """A member whose bytes come from an open binary file (the manifest members)."""
        self.add(entry, size)
        copied = 0
        while chunk := handle.read(CHUNK):
            self._emit(chunk)
            copied += len(chunk)
        if copied != size:
            raise RuntimeError(f"{entry.path}: expected {size} bytes, copied {copied}")
        self.pad()

    def close(self) -> None:
        self._emit(b"\0" * (2 * BLOCK))
        remainder = self._offset % RECORD
        if remainder:
            self._emit(b"\0" * (RECORD - remainder))
        if self._pending:
            self._out.write(bytes(self._pending))
            self._pending.clear()


def _copy_file(tar: _TarStream, entry: ManifestEntry, local: str | Path, sums, progress: Progress) -> None:
    """Copy one file into the tar, hashing it on the way; refuse a file that changes under us.

    A file smaller than a pool buffer is one read (of size + 1, to see it did not grow)."""
    fd, _ = open_as_listed(local, entry.size, entry.mtime_ns)
    try:
        data = None
        if entry.size < SMALL_FILE:
            data = os.read(fd, entry.size + 1)
            if len(data) != entry.size:
                raise changed_while_read(local)
            digest = hashlib.sha256(data)
        else:
            tar.add(entry, entry.size)
            digest = _copy_large(tar, fd, entry.size, local, progress)
        after = os.fstat(fd)
        if after.st_size != entry.size or after.st_mtime_ns != entry.mtime_ns:
            raise changed_while_read(local)
    finally:
        os.close(fd)
    if data is None:
        tar.pad()
    else:
        tar.add_small(entry, data)
        progress.advance(entry.size)
    sums.write(format_line(digest.hexdigest(), entry.path))


def _copy_large(tar: _TarStream, fd: int, size: int, local: str | Path, progress: Progress):
    digest = hashlib.sha256()
    remaining = size
    while remaining:
        buffer = tar.take_buffer()
        count = os.readv(fd, [memoryview(buffer)[:min(len(buffer), remaining)]])
        if not count:
            raise changed_while_read(local)
        view = memoryview(buffer)[:count]
        digest.update(view)
        tar.data(view, buffer)
        remaining -= count
        progress.advance(count)
    return digest


def write_archive(source: Path, dest_dir: Path, prefix: str, *, extra_files: dict[str, Path] | None = None,
                  progress: Progress | None = None, codec: Codec | None = None) -> BackupResult:
    """Archive the folder `source` (as `library/...`) plus `extra_files` into `dest_dir/<prefix>_<UTC stamp>.tar[.zst]`.

    Writes the `.sha256` sidecar (sha256sum format) and the `.log.jsonl` backup log beside it.
    `codec` None measures a sample of the files and picks zstd or plain tar (see compression.choose).
    Refuses (exit 5) before writing anything when `dest_dir` lacks room for the contents.
    """
    progress = progress or NoProgress()
    log = get_logger()
    started = time.monotonic()
    source = Path(source).expanduser().resolve()
    dest_dir = Path(dest_dir).expanduser().resolve()
    extra_files = {name: Path(path) for name, path in (extra_files or {}).items()}
    with tempfile.TemporaryDirectory(prefix=scratch_name("backup")) as scratch:
        listing = walk_tree(source, Listing(Path(scratch) / "listing.jsonl"), exclude=dest_dir,
                            extra_files=extra_files)
        needed = listing.bytes + listing.entries * HEADER_ALLOWANCE + 2 * listing.path.stat().st_size + RECORD
        require_free_space(dest_dir, needed, what=f"a backup of {source}")
        if codec is None:
            codec, sample_ratio = choose(listing.sample.entries,
                                         lambda e: _member_source(source, extra_files, e.path))
            log.info("backup.compression.chosen", codec=codec.name, sample_ratio=sample_ratio)
        dest_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(dest_dir / LOCK_NAME, timeout=600, what=f"a backup into {dest_dir}"):
            catalog.remove_leftovers(dest_dir, prefix)
            name = catalog.new_archive_name(dest_dir, prefix, utc_compact(), codec.extension)
            final = dest_dir / name
            log.info("backup.create.start", archive=str(final), source=str(source), files=listing.files,
                     bytes=listing.bytes, compression=codec.name)
            archive = _ArchiveFile(final, codec, streamed=streamed(listing.files, listing.bytes))
            try:
                sha256 = _write_members(archive, listing, source, extra_files, Path(scratch), progress)
                progress.finish()
                written = time.monotonic()
                report = archive.members_check.report(archive.path, sha256, progress)
            except BaseException:
                archive.abort()
                progress.finish()
                raise
            result = BackupResult(path=final, sha256=sha256, files=listing.files, bytes=listing.bytes,
                                  seconds=time.monotonic() - started, dirs=listing.dirs, symlinks=listing.symlinks,
                                  archive_bytes=archive.size, compression=codec.name,
                                  sidecar=catalog.sidecar_path(final), log=catalog.log_path(final),
                                  extras=listing.extras, skipped=listing.skipped, verified=True,
                                  verify_seconds=time.monotonic() - written)
            try:
                catalog.write_sidecar(final, sha256)
                catalog.start_log(final, {"event": "backup.created", "source": str(source), **_summary(result)})
                record_members_checked(final, report)
                os.replace(archive.path, final)
                catalog.pin_archive(final)  # under the lock: no sibling's retention can delete it before we report
                fsync_dir(dest_dir)
            except BaseException:
                archive.abort()
                catalog.remove_backup_files(final)
                raise
    log.info("backup.create.done", **_summary(result))
    return result


def _write_members(archive: _ArchiveFile, listing: Listing, source: Path, extra_files: dict[str, Path],
                   scratch: Path, progress: Progress) -> str:
    """MANIFEST.jsonl, the entries in listing order (each file hashed as it is copied), MANIFEST.sha256."""
    tar = _TarStream(archive)
    header = header_line(created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), source=str(source),
                         entries=listing.entries, total_bytes=listing.bytes, extras=listing.extras).encode()
    manifest_size = len(header) + listing.path.stat().st_size
    manifest_entry = ManifestEntry(MANIFEST_NAME, FILE, manifest_size, 0o644, time.time_ns())
    tar.add(manifest_entry, manifest_size)
    tar.data(header)
    with open(listing.path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            tar.data(chunk)
    tar.pad()
    progress.start("backup", total=listing.bytes, unit="bytes")
    sums_path = scratch / "sums.sha256"
    with open(sums_path, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as sums:
        for entry in listing.read():
            if entry.type == FILE:
                _copy_file(tar, entry, _member_source(source, extra_files, entry.path), sums, progress)
            else:
                tar.add(entry)
    size = sums_path.stat().st_size
    with open(sums_path, "rb") as handle:
        tar.add_stream(ManifestEntry(SUMS_NAME, FILE, size, 0o644, time.time_ns()), handle, size)
    tar.close()
    return archive.close()


def _member_source(source: Path, extra_files: dict[str, Path], member: str) -> Path | str:
    """The local file behind an archive member (a str for library files: no Path built per file)."""
    if member in extra_files:
        return extra_files[member]
    rest = member.partition("/")[2]
    return f"{source}/{rest}" if rest else source


def _summary(result: BackupResult) -> dict[str, Any]:
    return {"archive": str(result.path), "sha256": result.sha256, "files": result.files, "bytes": result.bytes,
            "dirs": result.dirs, "symlinks": result.symlinks, "archive_bytes": result.archive_bytes,
            "compression": result.compression, "seconds": round(result.seconds, 3)}
