"""What a migration still has to do, and whether source and target agree, from the journal and
`stat` alone: no file content is read here.

An entry is done when its journal row matches the source as it is now (size, mtime, inode, mode;
link text) and the target as it is now (size and mtime:inode token, or ETag on object storage).
A target entry that differs from its journal row was changed by someone else (the target may
have been the live library): it is a conflict, never overwritten.

Comparing whole trees holds nothing per entry: each side (source walk, target listing, journal)
is folded into an order-independent sum of its entries' key hashes (a multiset hash); equal sums
mean equal trees. Only when they differ are the trees compared name by name to say where, and
the few files whose only difference is their ctime hashed (recheck.py): a write that kept size
and mtime still moves the ctime, so a file is never trusted on a stat that could hide one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from stat import S_IMODE, S_ISDIR, S_ISLNK, S_ISREG

from mobius.media.destination import Destination, Stored
from mobius.media.journal import JournalRow, MigrationJournal
from mobius.media.recheck import recheck_ctimes
from mobius.media.treeprint import PREFIX as FIND_PREFIX
from mobius.media.treeprint import Records, start_fingerprint
from mobius.safety.atomic import TEMP_PREFIX
from mobius.safety.child import in_child
from mobius.safety.tree import DIR, FILE, LINK, Entry, walk

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
    """The source entry still is what the row says was copied (a file row without a source digest was
    found changed by its bytes alone: see recheck.py)."""
    if entry.kind != row.kind:
        return False
    if entry.kind == FILE:
        return row.digest is not None and (entry.size, entry.mtime_ns, entry.inode, entry.mode) == (
            row.size, row.mtime_ns, row.inode, row.mode)
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


WALK_AHEAD_THREADS = 4  # folders of the source listed ahead of the copy (walk's order, a few folders held)


def first_run_plan(source: Path, files: int, size: int) -> Plan:
    """Nothing journaled, target empty: every entry, streamed from a fresh walk of the source. Its next
    folders are listed by a few threads while a batch is copied, not between batches on the copy's path."""
    return Plan(walk(source, threads=WALK_AHEAD_THREADS), files=files, bytes=size)


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


def _target_key(path: str, kind: str, size: int, token: str, link: str | None) -> str:
    if kind == FILE:
        return f"{path}\0f\0{size}\0{token}"
    if kind == LINK:
        return f"{path}\0l\0{link}"
    return f"{path}\0{kind}"


FINGERPRINT_MOD = 1 << 128
FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
STAT_FIELDS = attrgetter("st_mode", "st_size", "st_mtime_ns", "st_ino", "st_ctime_ns")


@dataclass
class TreeScan:
    """One pass over a local tree: the per-process entry sum (compared with the journal's), the file
    count, and a fingerprint that is the same in every process (kept in the record, so a re-run with
    nothing changed compares two walks with it and reads no journal row)."""

    total: int = 0
    files: int = 0
    fingerprint: str | None = None


def _read_folder(folder: str, flags: int) -> tuple[list[str], list[tuple[int, int, int, int, int]], dict[str, str]]:
    """A folder's names (temp files left out, sorted), each one's (mode, size, mtime, inode, ctime) and its
    symlinks' texts. Every name is lstat'ed relative to the open folder: no path lookup from the root per
    name, and no Python object per entry beyond its stat."""
    fd = os.open(folder, flags)
    try:
        names = [name for name in os.listdir(fd) if not name.startswith(TEMP_PREFIX)]
        names.sort()
        lstat = os.stat
        values = list(map(STAT_FIELDS, [lstat(name, dir_fd=fd, follow_symlinks=False) for name in names]))
        links = {name: os.readlink(name, dir_fd=fd) for name, value in zip(names, values, strict=True)
                 if S_ISLNK(value[0])}
    finally:
        os.close(fd)
    return names, values, links


def _folder_digest(names: list[str], values: list[tuple[int, ...]], links: dict[str, str]) -> int:
    """A folder as a 128-bit number: its sorted names, every stat field the fingerprint trusts (ctime
    included, so a rewrite that put the mtime back still changes it) and its links' texts."""
    data = repr((names, values, sorted(links.items()))).encode("utf-8", "surrogateescape")
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "big")


def _scan_sum(root: str, *, target: bool, sums: bool = True, ctimes: bool = True) -> TreeScan:
    """Sum of the entry keys' hashes, file count and fingerprint of a local tree; no object per entry.

    The fingerprint is the sum (mod 2^128) of one blake2b digest per folder over its sorted entries'
    stats (ctime included): independent of walk order, deterministic across processes, one hash call
    per folder. The sum (skipped unless `sums`: the re-run's cheap check needs only the fingerprint)
    is the journal's keys; it leaves ctimes out when not `ctimes` (journals without them).
    """
    total = files = fingerprint = 0
    stack = [("", root, FOLDER_FLAGS)]
    while stack:
        rel_dir, folder, flags = stack.pop()
        names, values, links = _read_folder(folder, flags)
        fingerprint += _folder_digest(names, values, links)
        prefix = f"{rel_dir}/" if rel_dir else ""
        keys: list[str] = []
        for name, value in zip(names, values, strict=True):
            mode = value[0]
            if S_ISREG(mode):
                files += 1
                if sums:
                    _, size, mtime_ns, inode, ctime_ns = value
                    key = (f"{prefix}{name}\0f\0{size}\0{mtime_ns}:{inode}" if target else
                           f"{prefix}{name}\0f\0{size}\0{mtime_ns}\0{inode}\0{S_IMODE(mode)}")
                    keys.append(f"{key}\0{ctime_ns}" if ctimes else key)
                continue
            rel = f"{prefix}{name}"
            if S_ISDIR(mode):
                stack.append((rel, f"{folder}/{name}", FOLDER_FLAGS | os.O_NOFOLLOW))
                key = f"{rel}\0{DIR}" if target else f"{rel}\0{DIR}\0{S_IMODE(mode)}"
            elif S_ISLNK(mode):
                key = f"{rel}\0l\0{links[name]}"
            else:
                key = f"{rel}\0other"
            keys.append(key)
        if sums:
            total += sum(map(hash, keys))
    return TreeScan(total, files, f"{files}:{fingerprint % FINGERPRINT_MOD:032x}")


def _ns(stamp: str) -> int:
    """GNU find's `%T@`/`%C@` ("seconds.nanoseconds0", seconds maybe negative) as integer nanoseconds."""
    if len(stamp) < 12 or stamp[-11] != "." or stamp[-1] != "0":
        raise ValueError(f"not a GNU find time stamp: {stamp!r}")
    return int(stamp[:-11]) * 1_000_000_000 + int(stamp[-10:-1])


def _record_sums(records: Records, target: bool, ctimes: bool) -> tuple[int, int]:
    """(sum of the entry keys' hashes, files) of entries as find printed them: the keys `_scan_sum`
    makes from a stat, field for field (find's %m is S_IMODE, its %P the path under the root)."""
    keys: list[str] = []
    files = 0
    for line, link in records:
        kind, mode, size, mtime, ctime, inode, path = line.split(" ", 6)
        if kind == "f":
            files += 1
            key = (f"{path}\0f\0{size}\0{_ns(mtime)}:{inode}" if target else
                   f"{path}\0f\0{size}\0{_ns(mtime)}\0{inode}\0{int(mode, 8)}")
            keys.append(f"{key}\0{_ns(ctime)}" if ctimes else key)
        elif kind == "d":
            keys.append(f"{path}\0{DIR}" if target else f"{path}\0{DIR}\0{int(mode, 8)}")
        elif kind == "l":
            keys.append(f"{path}\0l\0{link}")
        else:
            keys.append(f"{path}\0other")
    return sum(map(hash, keys)), files


def start_tree_sum(root: str, *, target: bool, ctimes: bool) -> Callable[[], TreeScan]:
    """Start the one walk of a local tree that gives both its entry sum and its fingerprint: GNU find's,
    whose output is hashed (the fingerprint) and summed (the keys) as it arrives, while the caller
    sums the journal. Without GNU find, or if it fails, the waiter walks the tree in Python instead."""
    scan = TreeScan()

    def add(records: Records) -> None:
        total, files = _record_sums(records, target, ctimes)
        scan.total += total
        scan.files += files

    found = start_fingerprint(root, add)

    def result() -> TreeScan:
        scan.fingerprint = found()
        return scan if scan.fingerprint is not None else _scan_sum(root, target=target, ctimes=ctimes)

    return result


@dataclass
class TreeCounts:
    source_files: int = 0
    target_files: int = 0
    files: int = 0
    folders: int = 0
    links: int = 0
    bytes: int = 0
    source_fingerprint: str | None = None
    target_fingerprint: str | None = None


def local_root(dest: Destination) -> str | None:
    root = getattr(dest, "root", None)
    return str(root) if isinstance(root, Path) else None


def _target_sum(dest: Destination, ctimes: bool) -> Callable[[], TreeScan]:
    """Started now, waited for by calling the result. Object storage has no fingerprint (its listing is
    not a walk): every re-run compares with the journal."""
    root = local_root(dest)
    if root is not None:
        if dest.exists():
            return start_tree_sum(root, target=True, ctimes=ctimes)
        return lambda: TreeScan(fingerprint="0:" + "0" * 32)
    scan = TreeScan()
    for path, stored in dest.listing().items():
        scan.files += stored.kind == FILE
        scan.total += hash(_target_key(path, stored.kind, stored.size, stored.token, stored.link))
    return lambda: scan


def _journal_sums(journal: MigrationJournal, migration_id: str, dirs_at_target: bool, counts: TreeCounts,
                  ctimes: tuple[bool, bool]) -> tuple[int, int]:
    """The journal's sums as the source and as the target should be; counts what it holds."""
    row_src = row_dst = 0
    src_ctime, dst_ctime = ctimes
    for rows in journal.iter_raw(migration_id):
        src_keys, dst_keys = [], []
        for path, kind, size, mtime_ns, inode, mode, link, dst_size, dst_token, ctime_ns, dst_ctime_ns in rows:
            if kind == FILE:
                src_keys.append(f"{path}\0f\0{size}\0{mtime_ns}\0{inode}\0{mode}\0{ctime_ns}" if src_ctime
                                else f"{path}\0f\0{size}\0{mtime_ns}\0{inode}\0{mode}")
                dst_keys.append(f"{path}\0f\0{dst_size}\0{dst_token}\0{dst_ctime_ns}" if dst_ctime
                                else f"{path}\0f\0{dst_size}\0{dst_token}")
                counts.files += 1
                counts.bytes += size
            elif kind == LINK:
                key = f"{path}\0l\0{link}"
                src_keys.append(key)
                dst_keys.append(key)
                counts.links += 1
            else:
                src_keys.append(f"{path}\0{kind}\0{mode}")
                if dirs_at_target:
                    dst_keys.append(f"{path}\0{kind}")
                counts.folders += 1
        row_src += sum(map(hash, src_keys))
        row_dst += sum(map(hash, dst_keys))
    return row_src, row_dst


def compare_trees(source: Path, dest: Destination, journal: MigrationJournal, migration_id: str, *,
                  update: bool = True) -> tuple[list[str], TreeCounts]:
    """Every source entry journaled and unchanged, every target entry as written, nothing extra.

    Reads no file contents and holds nothing per entry unless the trees differ: each side is
    summed as hash(key) over its entries (keyed SipHash, random per process; with the counts
    equal, sums that agree by accident are a 2^-64 event), and only unequal sums are explained
    name by name. A file whose stat differs from its row only in the ctime is hashed: same bytes,
    the row takes the new ctime; other bytes, it is named (and at the source marked to be copied
    again). The journal is written only when `update`.
    """
    counts = TreeCounts()
    src_ctimes, dst_ctimes = journal.keeps_ctimes(migration_id)
    dst_ctimes = dst_ctimes and local_root(dest) is not None
    # each tree is walked once: its fingerprint and its sum come from the same walk, so the fingerprint kept
    # in the record is of the state the journal was compared with
    source_scan = start_tree_sum(str(source), target=False, ctimes=src_ctimes)
    target_scan = _target_sum(dest, dst_ctimes)
    row_src, row_dst = _journal_sums(journal, migration_id, dest.supports_links, counts, (src_ctimes, dst_ctimes))
    src, dst = source_scan(), target_scan()
    counts.source_files, counts.target_files = src.files, dst.files
    if not (src.total == row_src and dst.total == row_dst and counts.source_files == counts.target_files
            == counts.files):
        rows = journal.rows(migration_id)
        recheck = recheck_ctimes(source, local_root(dest), dest, journal, migration_id, update=update)
        problems = recheck.problems + explain_differences(source, dest, rows)
        if problems or not recheck.refreshed:
            return problems or ["the trees differ from the journal (entry sums differ)"], counts
    counts.source_fingerprint, counts.target_fingerprint = src.fingerprint, dst.fingerprint
    return [], counts


def unchanged_since_verified(source: Path, dest: Destination, source_fingerprint: str | None,
                             target_fingerprint: str | None) -> bool:
    """True when both local trees still have the fingerprints they had when compared with the journal.

    The cheap path of a re-run: two walks at once (stat only; GNU find's when the fingerprint was
    taken by it, see treeprint.py), no journal read. False means "do not know": the caller compares
    with the journal, which says what differs.
    """
    root = local_root(dest)
    if not (source_fingerprint and target_fingerprint and root and os.path.isdir(root)):
        return False
    by_find = [start_fingerprint(path) if recorded.startswith(FIND_PREFIX) else None
               for path, recorded in ((str(source), source_fingerprint), (root, target_fingerprint))]
    target = None if by_find[1] else in_child(_fingerprint, root, True)  # the other core walks the target
    source_now = by_find[0]() if by_find[0] else _fingerprint(str(source), False)
    try:
        target_now = by_find[1]() if by_find[1] else target()
    except OSError:
        target_now = None
    return source_now is not None and source_now == source_fingerprint and target_now == target_fingerprint


def _fingerprint(root: str, target: bool) -> str | None:
    try:
        return _scan_sum(root, target=target, sums=False).fingerprint
    except OSError:
        return None  # the full comparison says what is wrong


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
    return problems
