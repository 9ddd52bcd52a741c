"""The migration lock: two runners never interleave, and a killed runner never leaves a stale lock.

PostgreSQL: a session advisory lock held on its own connection (so the migration's own
transactions can commit and fail freely); it dies with the session. SQLite: an flock on a file
beside the database (mobius.safety.lock), released by the kernel when the process dies; it is
needed on top of SQLite's own locking because a phased migration commits several transactions.
Both wait `db_advisory_lock_wait_s` seconds, then refuse with exit 1.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mobius.db.engine import DatabaseTarget, connect
from mobius.errors import InputError
from mobius.log import get_logger
from mobius.safety.lock import FileLock

ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"mobius.schema_migrations").digest()[:8], "big", signed=True)


def sqlite_lock_path(target: DatabaseTarget) -> Path:
    path = target.sqlite_path
    return path.with_name(path.name + ".migrate-lock")


@contextmanager
def migration_lock(target: DatabaseTarget, *, wait_s: float) -> Iterator[None]:
    """Hold the database's migration lock for the duration of the block."""
    log = get_logger()
    if target.is_sqlite:
        with FileLock(sqlite_lock_path(target), timeout=wait_s, what=f"a migration of {target.sqlite_path}"):
            log.info("db.lock.acquired", lock=str(sqlite_lock_path(target)))
            yield
        return
    with connect(target) as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        deadline = time.monotonic() + wait_s
        while not conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({ADVISORY_KEY})").scalar():
            if time.monotonic() >= deadline:
                holder = _lock_holder(conn)
                raise InputError(
                    f"another migration holds the lock on {target.display}"
                    + (f" (server process {holder})" if holder else "") + f"; waited {wait_s:g}s",
                    hint="wait for it to finish, then run again (MOBIUS_DB_ADVISORY_LOCK_WAIT_S sets the wait)")
            time.sleep(0.2)
        log.info("db.lock.acquired", key=ADVISORY_KEY)
        try:
            yield
        finally:
            conn.exec_driver_sql(f"SELECT pg_advisory_unlock({ADVISORY_KEY})")


def _lock_holder(conn) -> int | None:  # noqa: ANN001
    """The server process holding the advisory lock, for the refusal message."""
    unsigned = ADVISORY_KEY & 0xFFFFFFFFFFFFFFFF
    try:
        return conn.exec_driver_sql(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            f"AND ((classid::bigint << 32) | objid::bigint) = {unsigned}").scalar()
    except Exception:  # noqa: BLE001 - only a detail of the message
        return None
