"""Opening a SQLite file in WAL mode when other processes may be opening it too.

SQLite answers "database is locked" at once, without its busy handler, to a connection that asks for
WAL while another is converting the same new file or running WAL recovery (measured: 6 processes
creating one record store together failed in 8 of 40 rounds; CI caught it as two `backup create` at
once). Those windows last milliseconds, so the setup is retried until `wait_s`, the same wait every
later statement gets from the busy timeout.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path


def open_wal(path: Path, *, schema: str, synchronous: str = "FULL", wait_s: float = 30.0) -> sqlite3.Connection:
    """A connection in autocommit mode, WAL, with `schema` (idempotent statements) applied.

    A new file is created owner-only (0600) before SQLite opens it: SQLite gives its `-wal` and `-shm` the
    main file's mode, and these stores hold plans, evidence and paths that only their owner should read.
    """
    _create_owner_only(path)
    db = sqlite3.connect(path, timeout=wait_s, isolation_level=None, check_same_thread=False)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous}")
            db.executescript(schema)
            return db
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                db.close()
                raise
            time.sleep(0.01)
        except BaseException:
            db.close()
            raise


def _create_owner_only(path: Path) -> None:
    # Any failure (it exists, a read-only folder) is left for sqlite3.connect to meet and report as before.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
