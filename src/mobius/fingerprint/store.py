"""The fingerprint tables (migration 0003) on SQLite or PostgreSQL, through the db engine helpers.

A row is written only with the file identity (size, mtime_ns, sha256) it was computed from, in
batches that each commit: a killed run keeps every batch it finished, and the next run hashes
only what is missing or changed. The active version is one row, switched in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, text

from mobius.config import Workspace
from mobius.db.engine import connect, table_names, target_for
from mobius.errors import EnvironmentProblem, VerificationError
from mobius.fingerprint.algorithm import Fingerprint, to_hex, to_signed, to_unsigned

TABLE = "image_fingerprints"
UPSERT = text(
    "INSERT INTO image_fingerprints (path, algorithm, size_bytes, mtime_ns, sha256, hash, variants, error, seconds,"
    " computed_at) VALUES (:path, :algorithm, :size, :mtime_ns, :sha256, :hash, :variants, :error, :seconds,"
    " CURRENT_TIMESTAMP) ON CONFLICT (path, algorithm) DO UPDATE SET size_bytes = excluded.size_bytes,"
    " mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, hash = excluded.hash, variants = excluded.variants,"
    " error = excluded.error, seconds = excluded.seconds, computed_at = excluded.computed_at")


@dataclass(frozen=True, slots=True)
class Known:
    """What a stored row says about a file: the identity it was hashed with."""

    size: int
    mtime_ns: int
    sha256: str | None
    has_variants: bool


@contextmanager
def session(ws: Workspace) -> Iterator[Connection]:
    """A connection to the workspace database whose schema has the fingerprint tables (else exit 3)."""
    with connect(target_for(ws)) as conn:
        with conn.begin():
            tables = table_names(conn)
        if TABLE not in tables:
            raise EnvironmentProblem("the database has no image_fingerprints table (migration 0003)",
                                     hint="run: mobius db migrate")
        yield conn


def _rows(conn: Connection, sql: str, params: dict | None = None) -> list:
    """A read in its own short transaction (SQLAlchemy would otherwise leave one open)."""
    with conn.begin():
        return conn.execute(text(sql), params or {}).all()


def known(conn: Connection, algorithm: str) -> dict[str, Known]:
    rows = _rows(conn, "SELECT path, size_bytes, mtime_ns, sha256, variants FROM image_fingerprints"
                       " WHERE algorithm = :a", {"a": algorithm})
    return {r[0]: Known(r[1], r[2], r[3], r[4] is not None) for r in rows}


def save(conn: Connection, algorithm: str, results: Iterable[Fingerprint]) -> None:
    rows = [{"path": r.path, "algorithm": algorithm, "size": r.size, "mtime_ns": r.mtime_ns, "sha256": r.sha256,
             "hash": None if r.hash is None else to_signed(r.hash),
             "variants": None if r.variants is None else ",".join(to_hex(v) for v in r.variants),
             "error": r.error, "seconds": r.seconds} for r in results]
    if rows:
        with conn.begin():
            conn.execute(UPSERT, rows)


def touch(conn: Connection, algorithm: str, path: str, mtime_ns: int) -> None:
    """A file rewritten with the same bytes (sha256 equal): keep its hash, record the new mtime."""
    with conn.begin():
        conn.execute(text("UPDATE image_fingerprints SET mtime_ns = :m WHERE path = :p AND algorithm = :a"),
                     {"m": mtime_ns, "p": path, "a": algorithm})


def forget(conn: Connection, algorithm: str, paths: Iterable[str]) -> int:
    """Drop the rows of files that left the library."""
    gone = [{"p": p, "a": algorithm} for p in paths]
    if gone:
        with conn.begin():
            conn.execute(text("DELETE FROM image_fingerprints WHERE path = :p AND algorithm = :a"), gone)
    return len(gone)


@dataclass
class HashTable:
    """The hashes of one algorithm version, in path order, ready for search."""

    algorithm: str
    paths: list[str]
    hashes: np.ndarray
    sha256: list[str | None]
    variants: np.ndarray | None

    def __len__(self) -> int:
        return len(self.paths)


def load(conn: Connection, algorithm: str, *, with_variants: bool = False) -> HashTable:
    rows = _rows(conn, "SELECT path, hash, sha256, variants FROM image_fingerprints"
                       " WHERE algorithm = :a AND hash IS NOT NULL ORDER BY path", {"a": algorithm})
    hashes = np.array([to_unsigned(r[1]) for r in rows], dtype=np.uint64)
    variants = None
    if with_variants:
        missing = [r[0] for r in rows if r[3] is None]
        if missing:
            raise VerificationError(f"{len(missing)} image(s) have no flip/rotation variants for {algorithm}, "
                                    f"e.g. {missing[0]}", hint="run: mobius library hash --variants")
        variants = np.array([[int(v, 16) for v in r[3].split(",")] for r in rows], dtype=np.uint64).reshape(-1, 8)
    return HashTable(algorithm, [r[0] for r in rows], hashes, [r[2] for r in rows], variants)


def versions(conn: Connection) -> dict[str, dict[str, int]]:
    """Every algorithm version stored, with its hashed and failed counts."""
    rows = _rows(conn, "SELECT algorithm, COUNT(hash), COUNT(error) FROM image_fingerprints"
                       " GROUP BY algorithm ORDER BY algorithm")
    return {r[0]: {"hashed": int(r[1]), "failed": int(r[2])} for r in rows}


def failures(conn: Connection, algorithm: str, limit: int = 20) -> list[dict[str, str]]:
    rows = _rows(conn, "SELECT path, error FROM image_fingerprints WHERE algorithm = :a AND error IS NOT NULL"
                       " ORDER BY path LIMIT :n", {"a": algorithm, "n": limit})
    return [{"path": r[0], "error": r[1]} for r in rows]


def seconds(conn: Connection, algorithm: str) -> np.ndarray:
    rows = _rows(conn, "SELECT seconds FROM image_fingerprints WHERE algorithm = :a AND hash IS NOT NULL",
                 {"a": algorithm})
    return np.array([r[0] for r in rows], dtype=np.float64)


def active(conn: Connection) -> tuple[str | None, str | None]:
    """(active version, previous version); (None, None) before the first hash run."""
    rows = _rows(conn, "SELECT algorithm, previous FROM fingerprint_active WHERE name = 'dhash'")
    return (rows[0][0], rows[0][1]) if rows else (None, None)


def activate(conn: Connection, algorithm: str, *, expected: str | None) -> None:
    """Make `algorithm` the active version in one transaction, only if `expected` is still active."""
    with conn.begin():
        current = conn.execute(text("SELECT algorithm FROM fingerprint_active WHERE name = 'dhash'")).first()
        if current is None:
            conn.execute(text("INSERT INTO fingerprint_active (name, algorithm, previous) VALUES ('dhash', :a, NULL)"),
                         {"a": algorithm})
            return
        if current[0] != expected:
            raise VerificationError(f"the active hash version changed to {current[0]} while this ran",
                                    hint="run the command again")
        switched = conn.execute(text("UPDATE fingerprint_active SET algorithm = :a, previous = :p,"
                                     " switched_at = CURRENT_TIMESTAMP WHERE name = 'dhash' AND algorithm = :p"),
                                {"a": algorithm, "p": expected})
        if switched.rowcount != 1:
            raise VerificationError("the active hash version changed while this ran", hint="run the command again")
