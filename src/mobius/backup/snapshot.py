"""A snapshot: one backup in the repository, as one JSON-lines file `snapshots/<id>.jsonl`.

- line 1, the header: id, created, parent, source, extras, totals, and what this snapshot added
  (files and bytes new vs reused, packs written);
- one line per entry in archive order, the archive manifest's fields (`path` as in an archive:
  `library/...`, `workspace/.env`, `database/mobius.dump`) plus, for files, `sha256` (the blob)
  and `ino`/`ctime_ns` (with size and mtime, what lets the next backup trust a file unchanged
  without reading it);
- the last line `{"end": <sha256 of every byte before it>}`: a torn or edited snapshot is known.

The file is written atomically and last, after every pack it references was checked: a
snapshot under its final name is complete, and everything it needs is in the repository.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _quoted  # what json.dumps escapes a str with
from pathlib import Path
from typing import IO, Any

from mobius.backup.crypto import PLAIN, RepositoryKeys, file_is_encrypted
from mobius.backup.manifest import FILE, ManifestEntry
from mobius.safety.atomic import atomic_write, fsync_dir, temp_name_for

SNAPSHOT_FORMAT = "mobius-snapshot"
SNAPSHOT_SUFFIX = ".jsonl"
READ_BYTES = 256 << 10
SPOOL_BUFFER = 1 << 20  # a write() per MiB of entry lines, not per 8 KiB: each one lets other threads take the GIL
SNAPSHOT_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


class SnapshotDamaged(Exception):
    """The snapshot file does not parse or fails its own checksum."""


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    """One entry: the archive manifest's fields, plus the blob and the identity of the file it came from."""

    path: str
    type: str
    size: int = 0
    mode: int = 0o644
    mtime_ns: int = 0
    target: str | None = None
    sha256: str | None = None
    ino: int = 0
    ctime_ns: int = 0
    etag: str | None = None  # an object's ETag (a library in object storage)

    def to_line(self) -> str:
        """The line `json.dumps(record, separators=(",", ":"))` writes, formatted directly (a line per file,
        every backup: json.dumps cost three times as much)."""
        line = (f'{{"path":{_quoted(self.path)},"type":{_quoted(self.type)},"size":{int(self.size)},'
                f'"mode":{int(self.mode)},"mtime_ns":{int(self.mtime_ns)}')
        if self.target is not None:
            line += f',"target":{_quoted(self.target)}'
        if self.sha256 is not None:
            line += f',"sha256":{_quoted(self.sha256)},"ino":{int(self.ino)},"ctime_ns":{int(self.ctime_ns)}'
        if self.etag is not None:
            line += f',"etag":{_quoted(self.etag)}'
        return line + "}\n"

    def to_record_line(self) -> str:
        """The same line through json.dumps (what `to_line` must equal; the tests compare them)."""
        record: dict[str, Any] = {"path": self.path, "type": self.type, "size": self.size, "mode": self.mode,
                                  "mtime_ns": self.mtime_ns}
        if self.target is not None:
            record["target"] = self.target
        if self.sha256 is not None:
            record.update(sha256=self.sha256, ino=self.ino, ctime_ns=self.ctime_ns)
        if self.etag is not None:
            record["etag"] = self.etag
        return json.dumps(record, separators=(",", ":")) + "\n"

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SnapshotEntry:
        target = record.get("target")
        sha = record.get("sha256")
        return cls(path=str(record["path"]), type=str(record["type"]), size=int(record.get("size", 0)),
                   mode=int(record.get("mode", 0)), mtime_ns=int(record.get("mtime_ns", 0)),
                   target=None if target is None else str(target), sha256=None if sha is None else str(sha),
                   ino=int(record.get("ino", 0)), ctime_ns=int(record.get("ctime_ns", 0)),
                   etag=None if record.get("etag") is None else str(record["etag"]))

    def manifest_entry(self) -> ManifestEntry:
        return ManifestEntry(self.path, self.type, self.size, self.mode, self.mtime_ns, self.target)


@dataclass
class SnapshotHeader:
    """What `list` shows: who, when, how much, and what this snapshot added to the repository."""

    id: str
    created: str
    source: str
    parent: str | None = None
    started_ns: int = 0
    extras: list[str] = field(default_factory=list)
    entries: int = 0
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    new_files: int = 0
    new_bytes: int = 0
    reused_files: int = 0
    reused_bytes: int = 0
    read_files: int = 0
    packs: list[str] = field(default_factory=list)
    stored_bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"format": SNAPSHOT_FORMAT, "version": 1, **{k: getattr(self, k) for k in self.__dataclass_fields__}}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> SnapshotHeader:
        if record.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotDamaged("not a snapshot header")
        return cls(**{k: record[k] for k in cls.__dataclass_fields__ if k in record})


def snapshot_path(folder: Path, snapshot_id: str) -> Path:
    return folder / f"{snapshot_id}{SNAPSHOT_SUFFIX}"


def write_snapshot(path: Path, header: SnapshotHeader, body: Path, keys: RepositoryKeys = PLAIN) -> None:
    """Header, the entry lines in `body`, and the checksum line; atomically (the snapshot appears whole or not),
    encrypted to `keys`' recipients when it has some."""
    if keys.encrypts:
        plain = body.with_name(body.name + ".snapshot")
        _write_plain(plain, header, body)
        tmp = temp_name_for(path)
        try:
            keys.encrypt_file(plain, tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)
        return
    _write_plain(path, header, body)


def _write_plain(path: Path, header: SnapshotHeader, body: Path) -> None:
    digest = hashlib.sha256()
    with atomic_write(path, "wb", file_mode=0o600) as out:
        line = (json.dumps(header.to_dict(), separators=(",", ":")) + "\n").encode()
        digest.update(line)
        out.write(line)
        with open(body, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        out.write((json.dumps({"end": digest.hexdigest()}) + "\n").encode())


def _open(path: Path, keys: RepositoryKeys):  # noqa: ANN202 - a binary file object
    if file_is_encrypted(path):
        return io.BytesIO(keys.read(path))
    return open(path, "rb")  # noqa: SIM115 - the caller's with closes it


def read_header(path: Path, keys: RepositoryKeys = PLAIN) -> SnapshotHeader:
    with _open(path, keys) as handle:
        line = handle.readline()
    try:
        return SnapshotHeader.from_dict(json.loads(line))
    except (ValueError, TypeError, KeyError) as exc:
        raise SnapshotDamaged(f"{path.name}: header unreadable ({exc})") from None


def _entry_lines(path: Path, keys: RepositoryKeys) -> Iterator[list[bytes]]:
    """The entry lines in runs of about READ_BYTES (the header line skipped, the end line held back and
    checked last, every byte in the file's digest); raises SnapshotDamaged when the file is not whole."""
    digest = hashlib.sha256()
    with _open(path, keys) as handle:
        digest.update(handle.readline())
        last: bytes | None = None
        while lines := handle.readlines(READ_BYTES):
            if last is not None:
                lines.insert(0, last)
            last = lines.pop()
            for line in lines:
                digest.update(line)
            yield lines
        _check_end(path, last, digest)


def read_entries(path: Path, keys: RepositoryKeys = PLAIN) -> Iterator[SnapshotEntry]:
    """Every entry, in order; raises SnapshotDamaged (at the end at the latest) when the file is not whole.
    Lines are parsed in bulk (one json call per READ_BYTES of lines: a call per line cost 3x)."""
    for lines in _entry_lines(path, keys):
        yield from _entries(path, lines)


def read_records(path: Path, keys: RepositoryKeys = PLAIN) -> Iterator[dict[str, Any]]:
    """Every entry line as the dict json parsed (no SnapshotEntry built: a repeat backup reads its parent's
    20,000 lines only for five fields each); raises SnapshotDamaged as `read_entries` does."""
    for lines in _entry_lines(path, keys):
        if lines:
            try:
                records = json.loads(b"[" + b",".join(lines) + b"]")
                if len(records) != len(lines):
                    raise ValueError("a line holds more than one value")
            except ValueError:
                records = [_record(path, line) for line in lines]
            yield from records


def _record(path: Path, line: bytes) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise SnapshotDamaged(f"{path.name}: an entry line is unreadable ({exc})") from None
    if not isinstance(record, dict):
        raise SnapshotDamaged(f"{path.name}: an entry line is not an object")
    return record


def _entries(path: Path, lines: list[bytes]) -> list[SnapshotEntry]:
    if not lines:
        return []
    try:
        records = json.loads(b"[" + b",".join(lines) + b"]")
        if len(records) != len(lines):
            raise ValueError("a line holds more than one value")
        return [SnapshotEntry.from_record(record) for record in records]
    except (ValueError, TypeError, KeyError, AttributeError):
        return [_entry(path, line) for line in lines]


def _entry(path: Path, line: bytes) -> SnapshotEntry:
    try:
        return SnapshotEntry.from_record(json.loads(line))
    except (ValueError, TypeError, KeyError) as exc:
        raise SnapshotDamaged(f"{path.name}: an entry line is unreadable ({exc})") from None


def _check_end(path: Path, last: bytes | None, digest) -> None:  # noqa: ANN001 - a hashlib object
    try:
        end = json.loads(last or b"")
    except ValueError:
        end = None
    if not isinstance(end, dict) or "end" not in end:
        raise SnapshotDamaged(f"{path.name} is truncated (no end line)")
    if end["end"] != digest.hexdigest():
        raise SnapshotDamaged(f"{path.name} fails its own checksum: it was changed or damaged")


class EntrySpool:
    """Entry lines of a snapshot being made, spooled to a scratch file (not held in memory)."""

    def __init__(self, path: Path):
        self.path = path
        self._out: IO[bytes] = open(path, "wb", buffering=SPOOL_BUFFER)  # noqa: SIM115 - closed in close()

    def add(self, entry: SnapshotEntry) -> None:
        self._out.write(entry.to_line().encode())

    def add_lines(self, lines: bytes) -> None:
        """Entry lines already in their final form (a parent snapshot's, unchanged)."""
        self._out.write(lines)

    def close(self) -> None:
        self._out.close()


def file_entries(path: Path, keys: RepositoryKeys = PLAIN) -> Iterator[SnapshotEntry]:
    return (entry for entry in read_entries(path, keys) if entry.type == FILE)
