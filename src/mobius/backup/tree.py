"""Walking the tree to back up into a listing on disk, before a byte of any file is read.

The listing (manifest lines without hashes) goes to a temporary file, so 100,000 files never
sit in memory at once; its totals size the disk-space check before anything is written.
A snapshot's listing (`identities`) also carries each file's inode and ctime from the walk's lstat,
so a file unchanged since the parent snapshot is recognised without a second stat.
Order is depth-first with names sorted, a folder before its contents; the folders next in line are
scanned ahead by a few threads (safety.tree.walk), which changes nothing in the listing.
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _quoted  # what json.dumps escapes a str with
from pathlib import Path

from mobius.backup.compression import SpreadSample
from mobius.backup.manifest import (
    DIR,
    FILE,
    LIBRARY_ROOT,
    MANIFEST_NAME,
    SUMS_NAME,
    SYMLINK,
    ManifestEntry,
    parse_lines,
)
from mobius.errors import InputError, VerificationError
from mobius.log import get_logger
from mobius.safety.tree import LINK, OTHER, Entry, walk

MAX_REPORTED = 20
READ_BYTES = 256 << 10  # listing lines parsed per json call
WALK_THREADS = 8  # folders scanned ahead of the listing (same order as one thread: the tests compare)
SPOOL_BUFFER = 1 << 20  # each write() to the file lets the walk's threads take the GIL: one per MiB, not per 8 KiB


@dataclass
class Listing:
    """Where the listing lies and what it adds up to."""

    path: Path
    entries: int = 0
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    extras: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    sample: SpreadSample = field(default_factory=SpreadSample)  # files whose bytes choose the compression
    identities: bool = False  # file lines carry "ino" and "ctime_ns" (an archive's listing is its manifest: never)

    def add(self, entry: ManifestEntry, out, ino: int = 0, ctime_ns: int = 0) -> None:  # noqa: ANN001 - a text file
        line = entry.to_line()
        if self.identities and entry.type == FILE:
            line = f'{line[:-2]},"ino":{int(ino)},"ctime_ns":{int(ctime_ns)}}}\n'
        out.write(line)
        self.sample.offer(entry)
        self.entries += 1
        if entry.type == FILE:
            self.files += 1
            self.bytes += entry.size
        elif entry.type == DIR:
            self.dirs += 1
        else:
            self.symlinks += 1

    def add_file(self, name: str, item: Entry, out) -> None:  # noqa: ANN001 - a text file
        """`add` of a walked file to a snapshot's listing (`identities`), the same line formatted in one step: no
        entry object, no compression sample (snapshots choose per frame)."""
        out.write(f'{{"path":{_quoted(name)},"type":"file","size":{item.size},"mode":{item.mode},'
                  f'"mtime_ns":{item.mtime_ns},"ino":{item.inode},"ctime_ns":{item.ctime_ns}}}\n')
        self.entries += 1
        self.files += 1
        self.bytes += item.size

    def read(self) -> Iterator[ManifestEntry]:
        with open(self.path, "rb") as handle:
            while lines := handle.readlines(READ_BYTES):
                for entry in parse_lines(lines):
                    if entry is None:
                        raise RuntimeError(f"{self.path}: a line this walk wrote does not parse")
                    yield entry

    def read_identified(self) -> Iterator[tuple[ManifestEntry, int, int]]:
        """Each entry with the inode and ctime the walk saw (0, 0 when the listing has none)."""
        with open(self.path, "rb") as handle:
            while lines := handle.readlines(READ_BYTES):
                try:
                    records = json.loads(b"[" + b",".join(lines) + b"]")
                    if len(records) != len(lines):
                        raise ValueError("a line holds more than one value")
                    parsed = [(ManifestEntry.from_record(r), r.get("ino", 0), r.get("ctime_ns", 0)) for r in records]
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    raise RuntimeError(f"{self.path}: a line this walk wrote does not parse ({exc})") from None
                yield from parsed


def _manifest_entry(name: str, item: Entry) -> ManifestEntry:
    """The manifest entry for a walked file, folder or symlink."""
    if item.kind == FILE:
        return ManifestEntry(name, FILE, item.size, item.mode, item.mtime_ns)
    if item.kind == DIR:
        return ManifestEntry(name, DIR, 0, item.mode, item.mtime_ns)
    return ManifestEntry(name, SYMLINK, 0, 0o777, item.mtime_ns, item.link)


def check_extra_name(name: str) -> None:
    parts = name.split("/")
    if (not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts)
            or parts[0] == LIBRARY_ROOT or name in (MANIFEST_NAME, SUMS_NAME)):
        raise InputError(f"extra archive member name {name!r} is not allowed",
                         hint=f"use a relative name outside '{LIBRARY_ROOT}/', e.g. 'workspace/.env'")


def walk_tree(source: Path, listing: Listing, *, exclude: Path | None = None,
              extra_files: dict[str, Path] | None = None) -> Listing:
    """Write one manifest line per path under `source` (then the extras) to `listing.path`."""
    log = get_logger()
    try:
        root_stat = os.stat(source)
    except OSError as exc:
        raise InputError(f"cannot read the folder to back up, {source}: {exc.strerror}",
                         hint="check MOBIUS_LIBRARY_DIR and that the folder exists") from None
    if not stat.S_ISDIR(root_stat.st_mode):
        raise InputError(f"{source} is not a folder", hint="point MOBIUS_LIBRARY_DIR at the library folder")
    escaping: list[str] = []
    excluded = os.path.realpath(exclude) if exclude else None
    with open(listing.path, "w", encoding="utf-8", buffering=SPOOL_BUFFER) as out:
        listing.add(ManifestEntry(LIBRARY_ROOT, DIR, 0, stat.S_IMODE(root_stat.st_mode), root_stat.st_mtime_ns), out)
        for item in walk(source, threads=WALK_THREADS, prune=lambda e: excluded is not None
                         and os.path.realpath(source / e.path) == excluded):
            name = f"{LIBRARY_ROOT}/{item.path}"
            if item.kind == LINK and not link_stays_inside(item.path, item.link or ""):
                escaping.append(f"{source / item.path} -> {item.link}")
                continue
            if item.kind == OTHER:
                if len(listing.skipped) < MAX_REPORTED:
                    listing.skipped.append(str(source / item.path))
                log.warning("backup.skipped", path=str(source / item.path), reason="not a file, folder or symlink")
                continue
            if item.kind == FILE and listing.identities:
                listing.add_file(name, item, out)
            else:
                listing.add(_manifest_entry(name, item), out, item.inode, item.ctime_ns)
        for name, local in (extra_files or {}).items():
            check_extra_name(name)
            try:
                st = os.stat(local)
            except OSError as exc:
                raise InputError(f"cannot read {local} to add as {name}: {exc.strerror}",
                                 hint="check the path") from None
            if not stat.S_ISREG(st.st_mode):
                raise InputError(f"{local} is not a regular file", hint=f"only files can be added as {name}")
            listing.add(ManifestEntry(name, FILE, st.st_size, stat.S_IMODE(st.st_mode), st.st_mtime_ns), out,
                        st.st_ino, st.st_ctime_ns)
            listing.extras.append(name)
    if escaping:
        raise InputError(
            f"{len(escaping)} symlink(s) in {source} point outside it; a restore would refuse them",
            hint="replace each link by a copy of its target or remove it, then run again",
            details=escaping[:MAX_REPORTED],
        )
    return listing


def link_stays_inside(link_rel: str, target: str) -> bool:
    """A relative symlink at `link_rel` whose target, read lexically, stays inside the tree root."""
    if not target or target.startswith("/") or "\0" in target:
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link_rel), target))
    return not (resolved == ".." or resolved.startswith("../") or resolved.startswith("/"))


def changed_while_read(local: str | Path) -> VerificationError:
    """The one error for a library file that changed between its listing and the end of its read."""
    return VerificationError(f"{local} changed while it was being backed up",
                             hint="stop whatever writes to the library, then run the backup again")


def open_as_listed(local: str | Path, size: int, mtime_ns: int) -> tuple[int, os.stat_result]:
    """A descriptor on `local` and its fstat, when it still is the regular file of `size` and `mtime_ns` the walk
    listed (never through a symlink); the caller closes it. Unreadable or changed: VerificationError."""
    try:
        fd = os.open(local, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise VerificationError(f"cannot read {local}: {exc.strerror}", hint="check its permissions") from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or before.st_size != size or before.st_mtime_ns != mtime_ns:
            raise changed_while_read(local)
    except BaseException:
        os.close(fd)
        raise
    return fd, before
