"""What a migration still has to do, and whether source and target agree, from the journal and
`stat` alone: no file content is read here.

An entry is done when its journal row matches the source as it is now (size, mtime, inode, mode;
link text) and the target as it is now (size and mtime:inode token, or ETag on object storage).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mobius.media.destination import Destination, Stored
from mobius.media.journal import JournalRow
from mobius.safety.tree import DIR, FILE, LINK, Entry, walk


@dataclass
class Plan:
    entries: list[Entry]
    dirs: list[Entry] = field(default_factory=list)
    links: list[Entry] = field(default_factory=list)
    files: list[Entry] = field(default_factory=list)
    skipped: int = 0
    stale: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(e.size for e in self.files)

    @property
    def empty(self) -> bool:
        return not (self.dirs or self.links or self.files or self.stale)


def same_source(entry: Entry, row: JournalRow) -> bool:
    if entry.kind != row.kind:
        return False
    if entry.kind == FILE:
        return (entry.size, entry.mtime_ns, entry.inode, entry.mode) == (row.size, row.mtime_ns, row.inode, row.mode)
    if entry.kind == LINK:
        return entry.link == row.link
    return entry.mode == row.mode


def same_target(row: JournalRow, stored: Stored | None, dest: Destination) -> bool:
    if row.kind == DIR and not dest.supports_links:
        return True  # object stores have no folders: kept in the journal only
    if stored is None or stored.kind != row.kind:
        return False
    if row.kind == FILE:
        return (stored.size, stored.token) == (row.dst_size, row.dst_token)
    if row.kind == LINK:
        return stored.link == row.link
    return True


def make_plan(entries: list[Entry], rows: dict[str, JournalRow], listing: dict[str, Stored],
              dest: Destination) -> Plan:
    """What still has to be done: every entry not journaled, or changed at either end since."""
    plan = Plan(entries)
    present = set()
    for entry in entries:
        present.add(entry.path)
        row = rows.get(entry.path)
        if row and same_source(entry, row) and same_target(row, listing.get(entry.path), dest):
            plan.skipped += 1
            continue
        {DIR: plan.dirs, LINK: plan.links, FILE: plan.files}[entry.kind].append(entry)
    plan.stale = sorted(p for p in rows if p not in present)
    return plan


def compare_trees(source: Path, dest: Destination, rows: dict[str, JournalRow]) -> tuple[list[str], dict[str, int]]:
    """Every source entry journaled and unchanged, every target entry as written, nothing extra.

    Reads no file contents: sizes, mtimes, inodes (ETags on object storage) against the journal.
    """
    problems: list[str] = []
    counts = {"source_files": 0, "target_files": 0}
    seen = set()
    for entry in walk(source):
        seen.add(entry.path)
        counts["source_files"] += entry.kind == FILE
        row = rows.get(entry.path)
        if row is None:
            problems.append(f"not copied: {entry.path}")
        elif not same_source(entry, row):
            problems.append(f"changed at the source since it was copied: {entry.path} (run again)")
    listing = dest.listing()
    for path, row in rows.items():
        if path not in seen:
            problems.append(f"journaled but gone from the source: {path}")
        elif not same_target(row, listing.get(path), dest):
            problems.append(f"changed or missing at the target: {path}")
    for path, stored in listing.items():
        counts["target_files"] += stored.kind == FILE
        if path not in seen:
            problems.append(f"extra at the target: {path}")
    if counts["source_files"] != counts["target_files"]:
        problems.append(f"file counts differ: {counts['source_files']} at the source, "
                        f"{counts['target_files']} at the target")
    return problems, counts
