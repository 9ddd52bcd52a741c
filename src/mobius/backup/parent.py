"""The parent snapshot as a new backup sees it: what lets a file be trusted unchanged without being read.

A file whose size, mtime, inode and ctime equal those the parent recorded is not read again (restic's and
borg's rule), unless its mtime is within a second of when the parent started (it may have changed again in
the same clock tick: git's "racily clean" rule).

For a folder the parent is not loaded into memory: its entry lines are read alongside the new listing, in
the order both were walked (`ParentLines`), and a file's listing line is compared with the parent's line
byte for byte: when they agree on every field (path, type, size, mode, mtime, inode, ctime), the parent's
line, with its sha256, is the new snapshot's line, and nothing is parsed. A table of 100,000 parent files
cost 20 MB and 0.3 s to load; parsing the listing and formatting each line again cost more than the rest of
a repeat backup. Only the few parent files that need a look (changed ones, the extras) are kept in a dict.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from mobius.backup.crypto import RepositoryKeys, file_is_encrypted
from mobius.backup.manifest import FILE, LIBRARY_ROOT
from mobius.backup.snapshot import READ_BYTES, SnapshotDamaged, read_records

if TYPE_CHECKING:
    import os

    from mobius.backup.repository import Repository

RACY_NS = 1_000_000_000
IDENTITY = struct.Struct("<QqQq")  # size, mtime_ns, ino, ctime_ns
PATH_START = len(b'{"path":')  # where every entry line's quoted path starts
TYPE_AFTER_PATH = b'","type":"'  # cannot occur inside a quoted path: a quote in a name is escaped
LIBRARY_PREFIX = b'{"path":"' + LIBRARY_ROOT.encode() + b"/"


def known_identity(size: object, mtime_ns: object, ino: object, ctime_ns: object, sha256: object) -> bytes | None:
    """A parent file's identity and blob packed in 64 bytes; None for values no file has (a damaged line:
    the file is then read again, never trusted)."""
    try:
        digest = bytes.fromhex(sha256)  # type: ignore[arg-type]
        if len(digest) != 32:
            return None
        return IDENTITY.pack(size, mtime_ns, ino, ctime_ns) + digest  # type: ignore[arg-type]
    except (struct.error, TypeError, ValueError):
        return None


def walk_key(path: str) -> str:
    """A key that sorts entries in the walk's order (safety.tree.walk: a folder's own entries by name, then each
    sub-folder's contents): the folder's parts, then the name behind a character below any in a name."""
    folder, _, name = path.rpartition("/")
    return f"{folder.replace('/', chr(1))}\x01\x00{name}"


def quoted_path(line: bytes) -> bytes | None:
    """The JSON-quoted path an entry line starts with (as written, escapes and all); None if it has none."""
    end = line.find(TYPE_AFTER_PATH, PATH_START)
    return line[PATH_START:end + 1] if end > 0 and line.startswith(b'{"path":"') else None


class ParentLines:
    """The parent's entry lines, read once from start to end while the new listing is read in the same order.

    `line_for(quoted)` gives the parent's line for the listing entry of that quoted path, or None when the
    parent has none; parent lines it passes over are files the walk no longer found. Lines outside
    `library/` (the extras, written after the library) go to `on_extra` as they are passed. A parent written
    in another order only costs reads (a line not met is a file read again), never a wrong match: a line
    is given only for the very same path. The file's own checksum is checked before the first line is given."""

    def __init__(self, handle: IO[bytes], on_extra):  # noqa: ANN001 - a callable taking a line
        self._handle = handle
        self._lines: Iterator[bytes] = self._read()
        self._on_extra = on_extra
        self._line: bytes | None = None
        self._quoted: bytes | None = None
        self._key: str | None = None
        self._next()

    @classmethod
    def open(cls, path: Path, keys: RepositoryKeys, on_extra) -> ParentLines:  # noqa: ANN001
        """The snapshot at `path` once its checksum line holds (SnapshotDamaged otherwise)."""
        handle = io.BytesIO(keys.read(path)) if file_is_encrypted(path) else open(path, "rb")  # noqa: SIM115
        try:
            _check_whole(path, handle)
            handle.seek(0)
            handle.readline()  # the header
            return cls(handle, on_extra)
        except BaseException:
            handle.close()
            raise

    def close(self) -> None:
        self._handle.close()

    def _read(self) -> Iterator[bytes]:
        last = None
        while lines := self._handle.readlines(READ_BYTES):
            if last is not None:
                lines.insert(0, last)
            last = lines.pop()  # the end line is no entry
            yield from lines

    def _next(self) -> None:
        for line in self._lines:
            if line.startswith(LIBRARY_PREFIX) or line.startswith(b'{"path":"library",'):
                self._line, self._quoted, self._key = line, quoted_path(line), None
                return
            self._on_extra(line)
        self._line = self._quoted = None

    def line_for(self, quoted: bytes) -> bytes | None:
        key = None
        while self._line is not None:
            if self._quoted == quoted:
                line = self._line
                self._next()
                return line
            if key is None:
                key = _decoded_key(quoted)
                if key is None:
                    return None  # a name that cannot be ordered: read it
            if self._key is None:
                self._key = _decoded_key(self._quoted)
            if self._key is not None and self._key > key:
                return None  # the listing's entry is new
            self._next()  # a file the walk no longer found (or a parent line that cannot be ordered)
        return None

    def drain(self) -> None:
        """Pass over the rest (so every extra line reached `on_extra`)."""
        while self._line is not None:
            self._next()


def _decoded_key(quoted: bytes | None) -> str | None:
    try:
        path = json.loads(quoted) if quoted is not None else None
    except ValueError:
        return None
    return walk_key(path) if isinstance(path, str) else None


def _check_whole(path: Path, handle: IO[bytes]) -> None:
    """The snapshot's last line holds the sha256 of every byte before it (read in large blocks)."""
    size = handle.seek(0, io.SEEK_END)
    tail_at = max(0, size - 4096)
    handle.seek(tail_at)
    tail = handle.read()
    start = tail.rfind(b"\n", 0, len(tail) - 1) + 1 + tail_at
    if start <= tail_at and tail_at > 0:
        raise SnapshotDamaged(f"{path.name} is truncated (no end line)")
    handle.seek(start)
    try:
        end = json.loads(handle.read())
    except ValueError:
        end = None
    if not isinstance(end, dict) or "end" not in end:
        raise SnapshotDamaged(f"{path.name} is truncated (no end line)")
    digest = hashlib.sha256()
    handle.seek(0)
    left = start
    while left > 0:
        block = handle.read(min(1 << 20, left))
        if not block:
            break
        digest.update(block)
        left -= len(block)
    if end["end"] != digest.hexdigest():
        raise SnapshotDamaged(f"{path.name} fails its own checksum: it was changed or damaged")


@dataclass
class ParentSnapshot:
    """The parent snapshot's files that a new backup looks up by path: path -> size, mtime_ns, ino, ctime_ns
    and blob packed in one 64-byte value (a tuple of six objects per file cost 51 MB at 100,000 files);
    objects' ETags aside. With `lines` (a folder's backup) the dict holds only what the listing's reading
    put there: the parent's files that are read again and the extras."""

    id: str | None = None
    started_ns: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    etags: dict[str, str] = field(default_factory=dict)
    lines: ParentLines | None = None

    @classmethod
    def load(cls, repo: Repository, source: str) -> ParentSnapshot:
        """The newest readable snapshot of `source`, every file in the dict (an object library's backup)."""
        for header in _newest_first(repo, source):
            parent = cls(header.id, header.started_ns)
            try:  # the records as parsed, not SnapshotEntry objects: 64 bytes per file is all this needs
                for r in read_records(repo.snapshot_file(header.id), repo.keys):
                    parent.remember(r)
            except (OSError, SnapshotDamaged, KeyError, TypeError, AttributeError):
                continue
            return parent
        return cls()

    @classmethod
    def open(cls, repo: Repository, source: str) -> ParentSnapshot:
        """The newest readable snapshot of `source`, its lines to be read alongside the new listing."""
        for header in _newest_first(repo, source):
            parent = cls(header.id, header.started_ns)
            try:
                parent.lines = ParentLines.open(repo.snapshot_file(header.id), repo.keys, parent.remember_line)
            except (OSError, SnapshotDamaged):
                continue
            return parent
        return cls()

    def close(self) -> None:
        if self.lines is not None:
            self.lines.close()

    @property
    def racy_after(self) -> int:
        """A file modified after this (ns) may have changed again unseen within the parent's clock tick."""
        return self.started_ns - RACY_NS

    def remember(self, r: dict) -> None:
        if r.get("type") == FILE and r.get("sha256"):
            known = known_identity(r.get("size", 0), r.get("mtime_ns", 0), r.get("ino", 0), r.get("ctime_ns", 0),
                                   r["sha256"])
            if known is not None:
                self.files[str(r["path"])] = known
                if r.get("etag") is not None:
                    self.etags[str(r["path"])] = str(r["etag"])

    def remember_line(self, line: bytes) -> None:
        """A parent line kept for a look by path (a damaged one is left out: that file is then read)."""
        try:
            record = json.loads(line)
            if isinstance(record, dict):
                self.remember(record)
        except (ValueError, KeyError, TypeError, AttributeError):
            pass

    def _same(self, path: str, size: int, mtime_ns: int, ino: int, ctime_ns: int) -> str | None:
        known = self.files.get(path)
        if known is None or mtime_ns > self.racy_after:
            return None
        try:
            identity = IDENTITY.pack(size, mtime_ns, ino, ctime_ns)
        except struct.error:
            return None
        return known[32:].hex() if known.startswith(identity) else None

    def unchanged(self, path: str, st: os.stat_result) -> str | None:
        """The parent's sha256 for a file whose identity is the same and not racily recent; else None."""
        return self._same(path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)

    def same_size_and_mtime(self, path: str, size: int, mtime_ns: int) -> bool:
        known = self.files.get(path)
        return known is not None and known[:16] == IDENTITY.pack(size, mtime_ns, 0, 0)[:16]

    def unchanged_object(self, path: str, size: int, mtime_ns: int, etag: str) -> str | None:
        """The parent's sha256 for an object with the same size, LastModified and ETag; else None."""
        known = self.files.get(path)
        if known is not None and etag and self.etags.get(path) == etag and self.same_size_and_mtime(path, size,
                                                                                                    mtime_ns):
            return known[32:].hex()
        return None


def _newest_first(repo: Repository, source: str) -> Iterator:
    """The snapshots of `source`, newest first (a damaged one is passed over by the caller)."""
    return (header for header in reversed(repo.headers()) if header.source == source)
