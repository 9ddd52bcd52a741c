"""Walking the tree to back up into a listing on disk, before a byte of any file is read.

The listing (manifest lines without hashes) goes to a temporary file, so 100,000 files never
sit in memory at once; its totals size the disk-space check before anything is written.
Order is depth-first with names sorted, a folder before its contents.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mobius.backup.manifest import DIR, FILE, LIBRARY_ROOT, MANIFEST_NAME, SUMS_NAME, SYMLINK, ManifestEntry
from mobius.errors import InputError
from mobius.log import get_logger

MAX_REPORTED = 20


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

    def add(self, entry: ManifestEntry, out) -> None:
        out.write(entry.to_line())
        self.entries += 1
        if entry.type == FILE:
            self.files += 1
            self.bytes += entry.size
        elif entry.type == DIR:
            self.dirs += 1
        else:
            self.symlinks += 1

    def read(self) -> Iterator[ManifestEntry]:
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                yield ManifestEntry.from_line(line)


def entry_for(name: str, st: os.stat_result, target: str | None = None) -> ManifestEntry | None:
    """The manifest entry for a stat result; None for what an archive must not hold (FIFOs, devices)."""
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISREG(st.st_mode):
        return ManifestEntry(name, FILE, st.st_size, mode, st.st_mtime_ns)
    if stat.S_ISDIR(st.st_mode):
        return ManifestEntry(name, DIR, 0, mode, st.st_mtime_ns)
    if stat.S_ISLNK(st.st_mode):
        return ManifestEntry(name, SYMLINK, 0, 0o777, st.st_mtime_ns, target)
    return None


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
    with open(listing.path, "w", encoding="utf-8") as out:
        listing.add(entry_for(LIBRARY_ROOT, root_stat), out)
        stack: list[tuple[str, Iterator[os.DirEntry]]] = [("", _sorted_entries(str(source)))]
        while stack:
            rel_dir, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            name = f"{LIBRARY_ROOT}/{rel}"
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode) and excluded and os.path.realpath(entry.path) == excluded:
                continue
            target = os.readlink(entry.path) if stat.S_ISLNK(st.st_mode) else None
            if target is not None and not link_stays_inside(rel, target):
                escaping.append(f"{source / rel} -> {target}")
                continue
            item = entry_for(name, st, target)
            if item is None:
                if len(listing.skipped) < MAX_REPORTED:
                    listing.skipped.append(str(source / rel))
                log.warning("backup.skipped", path=str(source / rel), reason="not a file, folder or symlink")
                continue
            listing.add(item, out)
            if item.type == DIR:
                stack.append((rel, _sorted_entries(entry.path)))
        for name, local in (extra_files or {}).items():
            check_extra_name(name)
            try:
                st = os.stat(local)
            except OSError as exc:
                raise InputError(f"cannot read {local} to add as {name}: {exc.strerror}",
                                 hint="check the path") from None
            if not stat.S_ISREG(st.st_mode):
                raise InputError(f"{local} is not a regular file", hint=f"only files can be added as {name}")
            listing.add(ManifestEntry(name, FILE, st.st_size, stat.S_IMODE(st.st_mode), st.st_mtime_ns), out)
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


def _sorted_entries(folder: str) -> Iterator[os.DirEntry]:
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    return iter(entries)
