"""What a migration still has to do, and whether source and target agree, from the journal and
`stat` alone: no file content is read here.

An entry is done when its journal row matches the source as it is now (size, mtime, inode, mode;
link text) and the target as it is now (size and mtime:inode token, or ETag on object storage).
A target entry that differs from its journal row was changed by someone else (the target may
have been the live library): it is a conflict, never overwritten.

Comparing whole trees holds nothing per entry: each side (source walk, target listing, journal)
is folded into an order-independent sum of 128-bit BLAKE2b digests of its entries (a multiset
hash); equal sums mean equal trees. Only when they differ are the trees compared name by name
to say where.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mobius.media.destination import Destination, Stored
from mobius.media.journal import JournalRow, MigrationJournal
from mobius.safety.tree import DIR, FILE, LINK, Entry, walk

MOD = 1 << 128
# a record whose target was (or may have been) the live library: anything there we did not journal is the user's
LIVE_STATUSES = ("completed", "rolled-back", "switching")


@dataclass
class Plan:
    """Entries to create or copy (`todo`, a list or a fresh walk), journal rows to forget first."""

    todo: Iterable[Entry]
    files: int = 0
    bytes: int = 0
    skipped: int = 0
    stale: list[str] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


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


def _edited(row: JournalRow, stored: Stored | None, dest: Destination) -> bool:
    """Present at the target but not as we wrote it (a missing entry is only re-created)."""
    return stored is not None and not same_target(row, stored, dest)


def first_run_plan(source: Path, files: int, size: int) -> Plan:
    """Nothing journaled, target empty: every entry, streamed from a fresh walk of the source."""
    return Plan(walk(source), files=files, bytes=size)


def make_plan(entries: list[Entry], rows: dict[str, JournalRow], listing: dict[str, Stored],
              dest: Destination, *, target_was_live: bool) -> Plan:
    """What still has to be done: every entry not journaled, or changed at the source since.

    Conflicts: a journaled target entry changed since it was written, and (when the target was
    the live library) any target entry we never journaled in the way of an entry to copy.
    """
    todo: list[Entry] = []
    plan = Plan(todo)
    present = set()
    for entry in entries:
        present.add(entry.path)
        row = rows.get(entry.path)
        stored = listing.get(entry.path)
        if row and same_target(row, stored, dest) and same_source(entry, row):
            plan.skipped += 1
            continue
        if row is not None and _edited(row, stored, dest):
            plan.conflicts.append(f"changed at the target since it was copied: {entry.path}")
            continue
        if row is None and stored is not None and target_was_live and not (entry.kind == DIR == stored.kind):
            plan.conflicts.append(f"at the target but never copied there: {entry.path}")
            continue
        if row is not None:
            plan.forget.append(entry.path)
        todo.append(entry)
        if entry.kind == FILE:
            plan.files += 1
            plan.bytes += entry.size
    for path in sorted(p for p in rows if p not in present):
        if _edited(rows[path], listing.get(path), dest):
            plan.conflicts.append(f"changed at the target since it was copied (gone from the source): {path}")
        else:
            plan.stale.append(path)
    if target_was_live:
        plan.conflicts += [f"at the target but not in the library: {p}" for p in sorted(listing)
                           if p not in present and p not in rows]
    return plan


def _h(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).digest(), "little")


def _source_key(e: Entry | JournalRow) -> str:
    if e.kind == FILE:
        return f"{e.path}\0f\0{e.size}\0{e.mtime_ns}\0{e.inode}\0{e.mode}"
    if e.kind == LINK:
        return f"{e.path}\0l\0{e.link}"
    return f"{e.path}\0{e.kind}\0{e.mode}"


def _target_key(path: str, kind: str, size: int, token: str, link: str | None) -> str:
    if kind == FILE:
        return f"{path}\0f\0{size}\0{token}"
    if kind == LINK:
        return f"{path}\0l\0{link}"
    return f"{path}\0{kind}"


@dataclass
class TreeCounts:
    source_files: int = 0
    target_files: int = 0
    files: int = 0
    folders: int = 0
    links: int = 0
    bytes: int = 0


def _fold(keys: Iterator[str]) -> int:
    return sum(map(_h, keys)) % MOD


def compare_trees(source: Path, dest: Destination, journal: MigrationJournal,
                  migration_id: str) -> tuple[list[str], TreeCounts]:
    """Every source entry journaled and unchanged, every target entry as written, nothing extra.

    Reads no file contents and holds nothing per entry unless the trees differ.
    """
    counts = TreeCounts()
    src_sum = dst_sum = row_src = row_dst = 0
    for entry in walk(source):
        counts.source_files += entry.kind == FILE
        src_sum += _h(_source_key(entry))
    for path, stored in _iter_listing(dest):
        counts.target_files += stored.kind == FILE
        dst_sum += _h(_target_key(path, stored.kind, stored.size, stored.token, stored.link))
    for row in journal.iter_rows(migration_id, ordered=False):
        row_src += _h(_source_key(row))
        if row.kind != DIR or dest.supports_links:
            row_dst += _h(_target_key(row.path, row.kind, row.dst_size, row.dst_token, row.link))
        counts.files += row.kind == FILE
        counts.folders += row.kind == DIR
        counts.links += row.kind == LINK
        counts.bytes += row.size if row.kind == FILE else 0
    if (src_sum - row_src) % MOD == 0 and (dst_sum - row_dst) % MOD == 0 \
            and counts.source_files == counts.target_files == counts.files:
        return [], counts
    return explain_differences(source, dest, journal.rows(migration_id)), counts


def _iter_listing(dest: Destination) -> Iterator[tuple[str, Stored]]:
    scan = getattr(dest, "iter_listing", None)
    return scan() if scan is not None else iter(dest.listing().items())


def target_problems(dest: Destination, journal: MigrationJournal, migration_id: str) -> list[str]:
    """The target alone against the journal (after finalize, the source is gone)."""
    listing = dest.listing()
    return [f"changed or missing at the target: {row.path}" for row in journal.iter_rows(migration_id)
            if not same_target(row, listing.get(row.path), dest)]


def explain_differences(source: Path, dest: Destination, rows: dict[str, JournalRow]) -> list[str]:
    """Name by name: what is not journaled, changed, missing or extra (only run when the sums differ)."""
    problems: list[str] = []
    seen = set()
    source_files = 0
    for entry in walk(source):
        seen.add(entry.path)
        source_files += entry.kind == FILE
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
    target_files = 0
    for path, stored in listing.items():
        target_files += stored.kind == FILE
        if path not in seen:
            problems.append(f"extra at the target: {path}")
    if source_files != target_files:
        problems.append(f"file counts differ: {source_files} at the source, {target_files} at the target")
    return problems or ["the trees differ from the journal (entry sums differ)"]
