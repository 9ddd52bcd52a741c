"""Is what a migration verified still there? Hash only the files a stat cannot clear.

A file whose size, mtime, inode and mode still match its journal row but whose ctime moved was
touched: possibly rewritten in place with its mtime put back (`touch -d`, `rsync -t`, a tool that
restores timestamps). Those files, and only those, are read again and compared with the digests
the journal holds; every other file is cleared by its stat. `reread_all` is the `--verify` path:
every byte of both trees read again, whatever the stat says.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from mobius.config import Workspace
from mobius.executor.hashing import hash_paths
from mobius.media.destination import Destination
from mobius.media.journal import JournalRow, MigrationJournal
from mobius.safety.hashing import sha256_file
from mobius.safety.tree import FILE

SOURCE_CHANGED = "changed at the source since it was copied (same size and mtime, other bytes): {} (run again)"
TARGET_CHANGED = "changed at the target since it was copied (same size and mtime, other bytes): {}"


@dataclass
class Recheck:
    """What `recheck_ctimes` read and found: files hashed, rows cleared by their bytes (ctime refreshed
    unless the caller only looks), what differs."""

    hashed: int = 0
    refreshed: int = 0
    source_changed: int = 0
    problems: list[str] = field(default_factory=list)
    target_changed: list[str] = field(default_factory=list)


def _touched(st: os.stat_result, identity: tuple, ctime_ns: int | None) -> bool:
    return ctime_ns is not None and identity == (st.st_size, st.st_mtime_ns, st.st_ino) and st.st_ctime_ns != ctime_ns


def _same(path: str, st: os.stat_result) -> bool:
    """Still the file that was hashed (its atime may have moved by the read itself)."""
    again = _lstat(path)
    return again is not None and (again.st_size, again.st_mtime_ns, again.st_ino, again.st_ctime_ns) == (
        st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None  # gone or unreadable: the name-by-name comparison says so


def recheck_ctimes(source: Path, target_root: str | None, dest: Destination, journal: MigrationJournal,
                   migration_id: str, *, update: bool = True) -> Recheck:
    """Hash the files whose stat matches the journal except for the ctime, on both sides.

    Same bytes: the row takes the new ctime, so the next run trusts the stat again. Other bytes at
    the source: named, and the row loses its source digest, which makes the plan copy the file
    again. Other bytes at the target: named (someone else's edit, never overwritten). The journal
    is written only when `update`.
    """
    found = Recheck()
    writes: list[JournalRow] = []
    for row in journal.iter_rows(migration_id, ordered=False):
        if row.kind != FILE:
            continue
        now = row
        path = f"{source}/{row.path}"
        st = _lstat(path)
        if st is not None and st.st_mode & 0o7777 == row.mode and _touched(st, (row.size, row.mtime_ns, row.inode),
                                                                        row.ctime_ns):
            found.hashed += 1
            if _sha256(path) == row.digest and _same(path, st):
                now = replace(now, ctime_ns=st.st_ctime_ns)
            else:
                found.problems.append(SOURCE_CHANGED.format(row.path))
                found.source_changed += 1
                now = replace(now, digest=None)
        if target_root is not None:
            path = f"{target_root}/{row.path}"
            st = _lstat(path)
            mtime, _, inode = row.dst_token.partition(":")
            if st is not None and _touched(st, (row.dst_size, int(mtime or -1), int(inode or -1)), row.dst_ctime_ns):
                found.hashed += 1
                if _read(dest, row.path) == row.dst_digest and _same(path, st):
                    now = replace(now, dst_ctime_ns=st.st_ctime_ns)
                else:
                    found.problems.append(TARGET_CHANGED.format(row.path))
                    found.target_changed.append(TARGET_CHANGED.format(row.path))
        if now is not row:
            writes.append(now)
            found.refreshed += now.digest is not None
    if update:
        journal.commit_rows(migration_id, writes)
    return found


def _sha256(path: str) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _read(dest: Destination, path: str) -> str | None:
    try:
        return dest.read(path)
    except OSError:
        return None


def reread_all(source: Path, target_root: str | None, dest: Destination, journal: MigrationJournal,
               migration_id: str, *, group: int = 20_000, ws: Workspace | None = None) -> tuple[int, list[str]]:
    """`--verify`: every journaled file of both trees read again and compared with its digests.

    Returns (files read on each side, what differs). Local trees are hashed on the workspace's executor
    (locally one process per core), `group` files at a time (memory stays flat at a million files).
    """
    files = (r for r in journal.iter_rows(migration_id, ordered=False) if r.kind == FILE)
    read, problems = 0, []
    while rows := [(r.path, r.digest, r.dst_digest) for r in itertools.islice(files, group)]:
        read += len(rows)
        at_source = [result[0] for result in hash_paths(ws, [f"{source}/{path}" for path, _, _ in rows])]
        if target_root is not None:
            at_target = [result[0] for result in hash_paths(ws, [f"{target_root}/{path}" for path, _, _ in rows])]
        else:
            at_target = [_read(dest, path) for path, _, _ in rows]
        for (path, digest, dst_digest), now, there in zip(rows, at_source, at_target, strict=True):
            if now != digest:
                problems.append(f"changed at the source since it was copied (sha256 differs): {path}")
            if there != dst_digest:
                problems.append(f"changed at the target since it was copied (sha256 differs): {path}")
    return read, problems
