"""A cache of file hashes keyed by path, trusted only while size, mtime and inode are unchanged.

A hash is stored as trustworthy only when the file's mtime is older than the hashing by a
safety margin: a file rewritten within the same timestamp tick as it was hashed would keep its
mtime, so such "racily clean" entries are never trusted (git's index has the same rule).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from mobius.safety.tree import Entry
from mobius.safety.wal import open_wal

RACY_MARGIN_NS = 2_000_000_000


class HashCache:
    """SQLite file in the workspace `state/`: path -> (size, mtime_ns, inode, digest)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # synchronous=NORMAL: a lost cache row only costs a re-read
        self._db = open_wal(path, synchronous="NORMAL", schema=(
            "CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
            " inode INTEGER, digest TEXT, hashed_ns INTEGER) WITHOUT ROWID;"))

    def lookup(self, absolute: str, entry: Entry) -> str | None:
        """The cached digest when the file still has the size, mtime and inode it was hashed with."""
        row = self._db.execute("SELECT size, mtime_ns, inode, digest FROM hashes WHERE path = ?",
                               (absolute,)).fetchone()
        if row and (row[0], row[1], row[2]) == entry.identity:
            return row[3]
        return None

    def store(self, rows: Iterable[tuple[str, Entry, str]], *, hashed_ns: int | None = None) -> int:
        """Remember (absolute path, entry as stat'ed before hashing, digest); skips racy entries."""
        return self.store_stats(((p, e.size, e.mtime_ns, e.inode, d) for p, e, d in rows), hashed_ns=hashed_ns)

    def store_stats(self, rows: Iterable[tuple[str, int, int, int, str]], *, hashed_ns: int | None = None) -> int:
        """Remember (absolute path, size, mtime_ns, inode, digest), the stat of the file as it was read."""
        started = hashed_ns if hashed_ns is not None else time.time_ns()
        keep = [(p, size, mtime, inode, d, started) for p, size, mtime, inode, d in rows
                if mtime < started - RACY_MARGIN_NS]
        if keep:
            self._db.execute("BEGIN")
            # a row already holding this identity and digest is left as it is (no page rewritten for it)
            self._db.executemany(
                "INSERT INTO hashes VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET size = excluded.size,"
                " mtime_ns = excluded.mtime_ns, inode = excluded.inode, digest = excluded.digest,"
                " hashed_ns = excluded.hashed_ns WHERE (size, mtime_ns, inode, digest) IS NOT"
                " (excluded.size, excluded.mtime_ns, excluded.inode, excluded.digest)", keep)
            self._db.execute("COMMIT")
        return len(keep)

    def close(self) -> None:
        self._db.close()
