"""One engine per database within a process (db.engine.connect): a session is reused, but nothing of one use
(settings, roles, advisory locks, temporary tables) reaches the next, and a forked child never uses a session
its parent opened."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from mobius.db.engine import DatabaseTarget, connect, dispose_shared_engines, normalize_url

pytestmark = pytest.mark.postgres


def _target(url: str) -> DatabaseTarget:
    return DatabaseTarget(normalize_url(url), lock_timeout_ms=1234)


def test_reused_session_starts_clean(pg_url: str) -> None:
    target = _target(pg_url)
    with connect(target) as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        conn.exec_driver_sql("SET lock_timeout = 99")
        conn.exec_driver_sql("SELECT pg_advisory_lock(4242)")
        conn.exec_driver_sql("CREATE TEMPORARY TABLE left_over (x int)")
    with connect(target) as conn:
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() == pid  # the same session, reused
        assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "1234ms"  # the connection's own setting
        assert conn.exec_driver_sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                    "AND pid = pg_backend_pid()").scalar() == 0
        assert conn.exec_driver_sql("SELECT to_regclass('pg_temp.left_over')").scalar() is None
    dispose_shared_engines()


def test_forked_child_opens_its_own_session(pg_url: str) -> None:
    target = _target(pg_url)
    with connect(target) as conn:
        parent_pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            with connect(target) as conn:
                os.write(write, str(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    child_pid = int(os.read(read, 64) or b"0")
    os.close(read)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_pid not in (0, parent_pid)
    with connect(target) as conn:  # the parent's session survived the child (its socket was never closed there)
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() == parent_pid
    dispose_shared_engines()


def test_sqlite_file_replaced_between_uses_is_read_fresh(tmp_path: Path) -> None:
    """SQLite is never pooled: a restore replaces the file, and a kept connection would read the old one."""
    path = tmp_path / "db.sqlite3"
    for value in (1, 2):
        fresh = tmp_path / f"new{value}.sqlite3"
        with sqlite3.connect(fresh) as db:
            db.execute("CREATE TABLE t (v int)")
            db.execute("INSERT INTO t VALUES (?)", (value,))
        fresh.replace(path)
        with connect(DatabaseTarget(normalize_url(f"sqlite:///{path}"))) as conn:
            assert conn.exec_driver_sql("SELECT v FROM t").scalar() == value
