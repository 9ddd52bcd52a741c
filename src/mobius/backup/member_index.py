"""A disk-backed index of what an archive should hold and what it does hold.

Verification compares the manifest (first member), the members as read, and their hashes
(last member). Kept in a temporary SQLite file, not in dicts, so 100,000 members cost a few
megabytes of disk and a flat amount of memory. Paths are stored as UTF-8 bytes with
surrogateescape, so names that are not valid UTF-8 survive.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from mobius.backup.manifest import ManifestEntry
from mobius.safety.leftovers import scratch_name

BATCH = 2000
# WITHOUT ROWID: each row is stored once, in its path's b-tree (a rowid table writes it twice: the row
# and the primary key's index)
SCHEMA = """
CREATE TABLE expected(path BLOB PRIMARY KEY, seq INTEGER, type TEXT, size INTEGER, mode INTEGER,
                      mtime_ns INTEGER, target BLOB) WITHOUT ROWID;
CREATE TABLE sums(path BLOB PRIMARY KEY, sha256 TEXT, dup INTEGER DEFAULT 0) WITHOUT ROWID;
CREATE TABLE seen(path BLOB PRIMARY KEY, seq INTEGER, type TEXT, size INTEGER, mode INTEGER, mtime INTEGER,
                  target BLOB, sha256 TEXT, dup INTEGER DEFAULT 0) WITHOUT ROWID;
CREATE TABLE links(path BLOB PRIMARY KEY) WITHOUT ROWID;
"""


def key(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "surrogateescape")


class MemberIndex:
    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix=scratch_name("verify"))
        self.db = sqlite3.connect(Path(self._dir) / "index.db", check_same_thread=False)
        self.db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
        self._seen: list[tuple] = []
        self.links = 0

    def close(self) -> None:
        self.db.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def add_expected(self, entries: Iterable[tuple[int, ManifestEntry]]) -> None:
        rows = ((key(e.path), seq, e.type, e.size, e.mode, e.mtime_ns, None if e.target is None else key(e.target))
                for seq, e in entries)
        self.db.executemany("INSERT OR REPLACE INTO expected VALUES (?,?,?,?,?,?,?)", rows)

    def add_sums(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.db.executemany("INSERT INTO sums(path, sha256) VALUES (?,?) ON CONFLICT(path) DO UPDATE SET dup=dup+1",
                            ((key(name), digest) for digest, name in pairs))

    def add_seen(self, seq: int, name: str, kind: str, size: int, mode: int, mtime: int, target: str | None,
                 sha256: str | None) -> None:
        row = (key(name), seq, kind, size, mode, mtime, None if target is None else key(target), sha256)
        if kind == "symlink":
            self.db.execute("INSERT OR IGNORE INTO links VALUES (?)", (key(name),))
            self.links += 1
        self._seen.append(row)
        if len(self._seen) >= BATCH:
            self.flush()

    def flush(self) -> None:
        self.db.executemany("INSERT INTO seen(path, seq, type, size, mode, mtime, target, sha256) "
                            "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET dup=dup+1", self._seen)
        self._seen.clear()

    def is_link(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM links WHERE path=?", (key(name),)).fetchone() is not None

    def expected(self, name: str) -> ManifestEntry | None:
        row = self.db.execute("SELECT path, type, size, mode, mtime_ns, target FROM expected WHERE path=?",
                              (key(name),)).fetchone()
        return None if row is None else ManifestEntry(text(row[0]), row[1], row[2], row[3], row[4], text(row[5]))

    def expected_with_sha256(self, name: str) -> tuple[ManifestEntry | None, str | None]:
        """The manifest entry of `name` and its sha256 from the sums, in one lookup."""
        row = self.db.execute("SELECT e.path, e.type, e.size, e.mode, e.mtime_ns, e.target, m.sha256 FROM expected e "
                              "LEFT JOIN sums m ON m.path=e.path WHERE e.path=?", (key(name),)).fetchone()
        if row is None:
            return None, self.expected_sha256(name)
        return ManifestEntry(text(row[0]), row[1], row[2], row[3], row[4], text(row[5])), row[6]

    def expected_sha256(self, name: str) -> str | None:
        row = self.db.execute("SELECT sha256 FROM sums WHERE path=?", (key(name),)).fetchone()
        return row[0] if row else None

    def expected_entries(self, kind: str | None = None) -> Iterator[ManifestEntry]:
        sql = "SELECT path, type, size, mode, mtime_ns, target FROM expected"
        sql += " WHERE type=? ORDER BY seq" if kind else " ORDER BY seq"
        for row in self.db.execute(sql, (kind,) if kind else ()):
            yield ManifestEntry(text(row[0]), row[1], row[2], row[3], row[4], text(row[5]))

    def query(self, sql: str, limit: int) -> tuple[int, list[tuple]]:
        """(how many rows `sql` yields, the first `limit` of them)."""
        count = self.db.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
        rows = self.db.execute(f"{sql} LIMIT {int(limit)}").fetchall() if count else []
        return count, rows
