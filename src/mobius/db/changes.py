"""A database's change token: a short string that changes whenever the database's content may have changed.

Equal tokens at two moments prove that no write was committed in between (every query sees the same
rows), without reading a row, so a comparison proven once (a promote's verify: both databases' row digests
equal) holds as long as both tokens stay the same. A promote then need not digest every row of two
databases to learn that nothing changed (on SQLite, 20,000 rows took about a second per digest; issue #20).
`None` means "no cheap proof here": the caller digests, as it always did. The rule is one-sided: a token may
change without a change of content (another database on the same server, an ANALYZE), never the other way
round.

SQLite (rollback journal, the default mode): the file change counter of the database header (bytes
24-27), which SQLite increments in the commit of every transaction that writes the file (in the normal
locking mode), read with a shared lock held, so no commit is half-way; with the file's device, inode,
size, mtime and ctime, so a file replaced (a restore renames a new file in) or rewritten by another tool
changes it too. No proof in WAL mode (the counter is not kept per transaction there), when a `-wal`
file or a hot `-journal` exists, or when the shared lock cannot be had at once (a writer holds it).

PostgreSQL: the server's transaction snapshot (`txid_current_snapshot()`: the oldest transaction still
running, the next transaction id, the ids in progress), with the database's oid: a write needs a transaction
id, and its commit moves the snapshot (an id handed out since, or one in progress then and ended since), so
an unchanged snapshot means no write committed to any database of the server; unlogged tables are covered
too (their writes need ids as well). Reads never move it. Any commit on the server (another database, an
ANALYZE) changes the token: on a busy server the proof rarely holds and the caller digests. Not covered, as
by any dump or digest: sequence values taken without a commit (`nextval` alone). It was the WAL insert
position (`pg_current_wal_insert_lsn()`) before; but the first reads after a restore write WAL (they prune
the catalog rows `DROP SCHEMA ... CASCADE` left dead: a first `pg_dump` of a restored database did every
time), so a proof taken right after a restore needed a warm-up read of every table, and a database with
unlogged tables had none.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from mobius.db.engine import DatabaseTarget, connect
from mobius.errors import MobiusError

SQLITE_HEADER = b"SQLite format 3\x00"
WAL_MODE = 2  # header bytes 18 and 19 (file format write/read version): 2 in WAL mode


def change_token(target: DatabaseTarget) -> str | None:
    """The database's change token, or None when no cheap proof of "unchanged" is possible (see the module)."""
    if target.is_sqlite:
        return _sqlite_token(target.sqlite_path)
    return _postgres_token(target)


def _sqlite_token(path: Path) -> str | None:
    if not path.is_file():
        return "sqlite:absent"
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        db.execute("BEGIN")
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the shared lock: no commit half-way
        if any(Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-journal")):
            return None
        with path.open("rb") as f:  # read while the lock is held (closing this fd drops it: we are done then)
            header = f.read(100)
            stat = os.fstat(f.fileno())
    except (sqlite3.Error, OSError):
        return None
    finally:
        db.close()
    if len(header) < 100 or not header.startswith(SQLITE_HEADER) or WAL_MODE in (header[18], header[19]):
        return None
    counter = int.from_bytes(header[24:28], "big")
    return f"sqlite:{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{counter}"


def _postgres_token(target: DatabaseTarget) -> str | None:
    url = target.url
    try:
        with connect(target) as conn:
            row = conn.exec_driver_sql(
                "SELECT txid_current_snapshot()::text, (SELECT oid FROM pg_database "
                "WHERE datname = current_database())::text").one()
            conn.rollback()
    except (SQLAlchemyError, MobiusError):  # the server unreachable
        return None
    snapshot, oid = row
    return f"postgresql:{url.host}:{url.port}:{url.database}:{oid}:{snapshot}"
