"""The migration journal and records: one SQLite file in the workspace `state/`.

WAL mode with synchronous=FULL: a committed row survives a kill -9 or a power cut. A file's
row is written only after its bytes were made durable under their final name and re-read from
the device (a target never live is written there directly; a live one gets temp + rename), so a
row always means "this file is complete at the target"; a missing row means "copy it (again)",
whatever the target holds under that name.

A file's row also keeps the ctime of both sides as they were verified: a write that keeps size
and mtime (restored with `touch -d`) still moves the ctime, so a re-run knows which files to hash
again. Journals written before ctimes were kept have NULL there (those rows are compared without).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mobius.safety.wal import open_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS migrations (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL,
    created TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    migration_id TEXT NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL,
    size INTEGER, mtime_ns INTEGER, inode INTEGER, mode INTEGER, link TEXT, digest TEXT,
    dst_size INTEGER, dst_token TEXT, dst_digest TEXT, ctime_ns INTEGER, dst_ctime_ns INTEGER,
    PRIMARY KEY (migration_id, path)) WITHOUT ROWID;
"""
COLUMNS = ("path, kind, size, mtime_ns, inode, mode, link, digest, dst_size, dst_token, dst_digest, ctime_ns, "
           "dst_ctime_ns")

OPEN_STATUSES = ("running", "stopped", "failed", "verified", "switching", "rolled-back")


@dataclass
class MigrationRecord:
    """What a migration did; kept in the workspace for `mobius media migrations`."""

    id: str
    source: str
    target: str
    status: str
    created: str
    updated: str = ""
    finished: str | None = None
    files: int = 0
    folders: int = 0
    links: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    runs: int = 0
    source_manifest: str | None = None
    target_manifest: str | None = None
    source_manifest_sha256: str | None = None
    target_manifest_sha256: str | None = None
    source_fingerprint: str | None = None  # the trees as verified (plan.TreeScan): a re-run's cheap check
    target_fingerprint: str | None = None
    backup: str | None = None
    backup_sha256: str | None = None
    backup_skipped: bool = False
    setting: str = "MOBIUS_LIBRARY_DIR"
    previous_value: str | None = None
    new_value: str | None = None
    failures: list[str] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One finished entry: the source as it was copied (digest hashed while reading) and the
    destination as written (dst_digest hashed from the re-read after dropping the page cache)."""

    path: str
    kind: str
    size: int
    mtime_ns: int
    inode: int
    mode: int
    link: str | None
    digest: str | None
    dst_size: int
    dst_token: str
    dst_digest: str | None
    ctime_ns: int | None = None
    dst_ctime_ns: int | None = None


class MigrationJournal:
    def __init__(self, path: Path, *, create: bool = True):
        self.path = path
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = open_wal(path, schema=SCHEMA)
        else:
            # read-write but query-only, not mode=ro: the last connection to close removes the -wal and -shm
            # files (a read-only one cannot, and left them in the workspace after every listing or dry run)
            self._db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA query_only = ON")
        self._columns = COLUMNS
        have = {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}
        if have and "ctime_ns" not in have:  # a journal from before ctimes were kept
            if create:
                self._db.execute("ALTER TABLE entries ADD COLUMN ctime_ns INTEGER")
                self._db.execute("ALTER TABLE entries ADD COLUMN dst_ctime_ns INTEGER")
            else:
                self._columns = COLUMNS.replace("ctime_ns, dst_ctime_ns", "NULL, NULL")

    @classmethod
    def read_only(cls, path: Path) -> MigrationJournal | None:
        """For --dry-run and listings: never creates the file."""
        return cls(path, create=False) if path.is_file() else None

    def close(self) -> None:
        self._db.close()

    # records
    def save(self, record: MigrationRecord) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO migrations (id, source, target, status, created, record) VALUES (?, ?, ?, ?, ?, ?)",
            (record.id, record.source, record.target, record.status, record.created,
             json.dumps(record.to_dict(), ensure_ascii=False)),
        )

    def get(self, migration_id: str) -> MigrationRecord | None:
        row = self._db.execute("SELECT record FROM migrations WHERE id = ?", (migration_id,)).fetchone()
        return MigrationRecord(**json.loads(row[0])) if row else None

    def records(self) -> list[MigrationRecord]:
        rows = self._db.execute("SELECT record FROM migrations ORDER BY created, id").fetchall()
        return [MigrationRecord(**json.loads(r[0])) for r in rows]

    def resumable_migration(self, source: str, target: str) -> MigrationRecord | None:
        """The migration of `source` to `target` to resume: unfinished, rolled back, or completed but the
        library points at the source again (then it re-syncs what changed)."""
        statuses = (*OPEN_STATUSES, "completed")
        marks = ",".join("?" * len(statuses))
        row = self._db.execute(
            f"SELECT record FROM migrations WHERE source = ? AND target = ? AND status IN ({marks})"
            " ORDER BY created DESC LIMIT 1", (source, target, *statuses)).fetchone()
        return MigrationRecord(**json.loads(row[0])) if row else None

    def last_into(self, target: str, statuses: Iterable[str]) -> MigrationRecord | None:
        wanted = tuple(statuses)
        marks = ",".join("?" * len(wanted))
        row = self._db.execute(
            f"SELECT record FROM migrations WHERE target = ? AND status IN ({marks}) ORDER BY created DESC LIMIT 1",
            (target, *wanted)).fetchone()
        return MigrationRecord(**json.loads(row[0])) if row else None

    # entries
    def rows(self, migration_id: str) -> dict[str, JournalRow]:
        cursor = self._db.execute(f"SELECT {self._columns} FROM entries WHERE migration_id = ?", (migration_id,))
        return {r[0]: JournalRow(*r) for r in cursor}

    def iter_rows(self, migration_id: str, *, ordered: bool = True) -> Iterator[JournalRow]:
        """Rows one at a time (by path unless `ordered` is False), never all held at once."""
        cursor = self._db.cursor()
        cursor.arraysize = 4096
        cursor.execute(f"SELECT {self._columns} FROM entries WHERE migration_id = ?"
                       + (" ORDER BY path" if ordered else ""), (migration_id,))
        return (JournalRow(*r) for r in cursor)

    def iter_digests(self, migration_id: str, *, target: bool = False) -> Iterator[tuple[str, str]]:
        """(digest, path) of every file row by path, the source's or (`target`) the re-read target's: a
        manifest's lines straight from the index, no row object (measured: 0.09 s of CPU against 0.36 s
        through `iter_rows`, per manifest of 100,000 files)."""
        column = "dst_digest" if target else "digest"
        cursor = self._db.cursor()
        cursor.arraysize = 4096
        return cursor.execute(f"SELECT {column}, path FROM entries WHERE migration_id = ? AND kind = 'file' "
                              "ORDER BY path", (migration_id,))

    def iter_raw(self, migration_id: str, size: int = 8192) -> Iterator[list[tuple]]:
        """Rows as plain tuples (path, kind, size, mtime_ns, inode, mode, link, dst_size, dst_token, ctime_ns,
        dst_ctime_ns), in lists of `size`: for whole-tree comparisons that build no object per row."""
        columns = self._columns.replace(" digest,", "").replace(" dst_digest,", "")
        cursor = self._db.execute(f"SELECT {columns} FROM entries WHERE migration_id = ?", (migration_id,))
        while rows := cursor.fetchmany(size):
            yield rows

    def keeps_ctimes(self, migration_id: str) -> tuple[bool, bool]:
        """(every file row has its source ctime, every file row has its target ctime): only then are ctimes
        part of a comparison (rows from before ctimes were kept, or object storage, have none)."""
        if "NULL" in self._columns:
            return False, False
        src, dst = self._db.execute(
            "SELECT count(ctime_ns) = count(*), count(dst_ctime_ns) = count(*) FROM entries"
            " WHERE migration_id = ? AND kind = 'file'", (migration_id,)).fetchone()
        return bool(src), bool(dst)

    def count_rows(self, migration_id: str) -> int:
        return self._db.execute("SELECT count(*) FROM entries WHERE migration_id = ?", (migration_id,)).fetchone()[0]

    def commit_rows(self, migration_id: str, rows: Iterable[JournalRow], *, forget: Iterable[str] = (),
                    raw: Iterable[tuple] = ()) -> None:
        """Record finished entries (and drop forgotten ones) in one durable transaction; `raw`: more rows as
        plain tuples in COLUMNS order (a batch's copied files come from the worker processes that way)."""
        forget, rows, raw = list(forget), list(rows), list(raw)
        if not rows and not forget and not raw:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("DELETE FROM entries WHERE migration_id = ? AND path = ?",
                                 [(migration_id, p) for p in forget])
            self._db.executemany(
                f"INSERT OR REPLACE INTO entries (migration_id, {COLUMNS}) VALUES (?{', ?' * 13})",
                [(migration_id, r.path, r.kind, r.size, r.mtime_ns, r.inode, r.mode, r.link, r.digest,
                  r.dst_size, r.dst_token, r.dst_digest, r.ctime_ns, r.dst_ctime_ns) for r in rows]
                + [(migration_id, *r) for r in raw])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
