"""One way to reach the database, SQLite or PostgreSQL, through SQLAlchemy Core.

SQLite: Python's sqlite3 module commits on its own around DDL, so a failed migration could
not be rolled back. We switch its implicit transactions off (`isolation_level=None`) and emit
`BEGIN IMMEDIATE` ourselves: SQLAlchemy's documented recipe for pysqlite, with the write lock
taken at the start of the transaction rather than half-way through it.

PostgreSQL: psycopg 3; `postgresql://` URLs are mapped to `postgresql+psycopg://`, and every
connection starts with the workspace's `lock_timeout` and `statement_timeout`.

`connect` reuses one engine per database within a process (issue #20: a promote opened about 26
PostgreSQL sessions, a new server process each). A PostgreSQL session goes back to its pool only
after `DISCARD ALL` (settings, advisory locks, temporary tables, prepared statements: nothing of one
use reaches the next), at most a few databases keep an idle session, and a forked child drops
the parent's pools without touching their sockets (os.register_at_fork): no session crosses a fork.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool, QueuePool

from mobius.config import Workspace, mask_secret
from mobius.errors import EnvironmentProblem, InputError

SQLITE_BUSY_TIMEOUT_S = 30.0
SHARED_ENGINES = 4  # databases whose engine (and one idle PostgreSQL session) a process keeps


def normalize_url(url: str, *, base: Path | None = None) -> URL:
    """A SQLAlchemy URL for SQLite or PostgreSQL (psycopg 3); relative SQLite paths resolve against `base`."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InputError(f"not a database URL: {mask_secret('url', url)}",
                         hint="use sqlite:///path/to/file.db or postgresql://user:password@host/dbname") from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:" or database.startswith("file:"):
            raise InputError(f"SQLite database {url!r} is not a file", hint="use sqlite:///path/to/file.db")
        path = Path(database).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        return parsed.set(drivername="sqlite", database=str(path))
    raise InputError(f"unsupported database {parsed.drivername!r} in {mask_secret('url', url)}",
                     hint="Mobius supports sqlite:/// and postgresql:// URLs")


@dataclass(frozen=True)
class DatabaseTarget:
    """Where a database lives and the timeouts its migration sessions use."""

    url: URL
    lock_timeout_ms: int = 5000
    statement_timeout_ms: int = 0

    @property
    def dialect(self) -> str:
        return "sqlite" if self.url.get_backend_name() == "sqlite" else "postgresql"

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def sqlite_path(self) -> Path:
        return Path(self.url.database or "")

    @property
    def libpq_url(self) -> str:
        """The URL as libpq tools (pg_dump, psql) understand it, WITHOUT its password (see libpq_env):
        a command line is readable by every local user through `ps`."""
        url = self.url
        query = {k: v for k, v in url.query.items() if k.lower() != "password"}
        bare = URL.create("postgresql", username=url.username, host=url.host, port=url.port,
                          database=url.database, query=query)  # URL.set(password=None) keeps the password
        return bare.render_as_string(hide_password=False)

    def libpq_env(self, **extra: str) -> dict[str, str]:
        """The environment for a libpq tool: the password goes in PGPASSWORD (private to the process)."""
        env = {**pg_tool_env(), **extra}
        password = self.url.password
        if password is None:
            for key, value in self.url.query.items():
                if key.lower() == "password":
                    password = value if isinstance(value, str) else value[-1]
        if password is not None:
            env["PGPASSWORD"] = str(password)
        return env

    @property
    def display(self) -> str:
        """The URL with any password hidden."""
        return self.url.render_as_string(hide_password=True)

    @property
    def name(self) -> str:
        """A short name for file names: the SQLite file stem or the PostgreSQL database name."""
        if self.is_sqlite:
            return self.sqlite_path.stem
        return self.url.database or "postgres"

    def with_database(self, database: str) -> DatabaseTarget:
        """The same server, another database (PostgreSQL) or file (SQLite)."""
        return DatabaseTarget(self.url.set(database=database), self.lock_timeout_ms, self.statement_timeout_ms)


def target_for(ws: Workspace, url: str | None = None) -> DatabaseTarget:
    """The workspace's database (or `url`), with the workspace's timeouts."""
    return DatabaseTarget(normalize_url(url or ws.database_url, base=ws.root),
                          ws.settings.db_lock_timeout_ms, ws.settings.db_statement_timeout_ms)


def make_engine(target: DatabaseTarget, *, enforce_foreign_keys: bool = True, pooled: bool = False) -> Engine:
    """An engine with explicit transactions on SQLite and timeouts on PostgreSQL.

    `enforce_foreign_keys=False` is for migrations on SQLite: table rebuilds need
    `foreign_keys=OFF` (it cannot change inside a transaction), and the runner runs
    `PRAGMA foreign_key_check` before it commits instead. `pooled` (PostgreSQL only) keeps one idle
    session, cleaned with `DISCARD ALL` before it is reused; SQLite never pools (a restore replaces
    the file, and a kept connection would still read the old one).
    """
    if target.is_sqlite:
        target.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(target.url, poolclass=NullPool,
                               connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False})
        pragma = "ON" if enforce_foreign_keys else "OFF"

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection, _record) -> None:  # noqa: ANN001
            dbapi_connection.isolation_level = None
            dbapi_connection.execute(f"PRAGMA foreign_keys={pragma}")

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    options = f"-c lock_timeout={int(target.lock_timeout_ms)} -c statement_timeout={int(target.statement_timeout_ms)}"
    # prepare_threshold=None: psycopg prepares nothing on its own, so the DISCARD ALL below cannot drop a
    # statement it believes prepared
    args = {"options": options, "connect_timeout": 10, "prepare_threshold": None}
    if not pooled:
        return create_engine(target.url, poolclass=NullPool, connect_args=args)
    engine = create_engine(target.url, poolclass=QueuePool, pool_size=1, max_overflow=8, pool_pre_ping=True,
                           pool_reset_on_return=None, connect_args=args)

    @event.listens_for(engine, "reset")
    def _reset(dbapi_connection, _record, reset_state) -> None:  # noqa: ANN001
        dbapi_connection.rollback()
        if reset_state.terminate_only:
            return
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # DISCARD ALL cannot run inside a transaction
        try:
            dbapi_connection.execute("DISCARD ALL")  # SET, SET ROLE, advisory locks, temp tables, LISTEN
        finally:
            dbapi_connection.autocommit = autocommit

    return engine


_shared: OrderedDict[tuple[str, int, int, bool], Engine] = OrderedDict()
_shared_lock = threading.Lock()


def shared_engine(target: DatabaseTarget, *, enforce_foreign_keys: bool = True) -> Engine:
    """This process's engine for `target` (made on first use; the least recently used of more than
    SHARED_ENGINES is disposed, so a long process never holds sessions to every database it met)."""
    key = (target.url.render_as_string(hide_password=False), target.lock_timeout_ms, target.statement_timeout_ms,
           enforce_foreign_keys)
    with _shared_lock:
        engine = _shared.get(key)
        if engine is not None:
            _shared.move_to_end(key)
            return engine
        engine = _shared[key] = make_engine(target, enforce_foreign_keys=enforce_foreign_keys,
                                            pooled=not target.is_sqlite)
        while len(_shared) > SHARED_ENGINES:
            _shared.popitem(last=False)[1].dispose()
        return engine


def dispose_shared_engines(*, close: bool = True) -> None:
    """Forget every shared engine; `close=False` in a forked child: the sockets are the parent's, never closed
    or used here (SQLAlchemy's documented way to hand a forked child fresh pools)."""
    with _shared_lock:
        engines = list(_shared.values())
        _shared.clear()
    for engine in engines:
        engine.dispose(close=close)


def _after_fork_in_child() -> None:
    global _shared_lock
    _shared_lock = threading.Lock()  # another thread of the parent may have held it at the fork
    dispose_shared_engines(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(dispose_shared_engines)


@contextmanager
def connect(target: DatabaseTarget, *, enforce_foreign_keys: bool = True) -> Iterator[Connection]:
    """A connection from this process's engine for `target` (shared_engine), returned to its pool on exit
    (PostgreSQL: cleaned first) or closed (SQLite); connection failures exit 3."""
    engine = shared_engine(target, enforce_foreign_keys=enforce_foreign_keys)
    if target.is_sqlite:  # the engine may be older than a removal of the folder (make_engine created it once)
        target.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = engine.connect()
    except Exception as exc:  # noqa: BLE001 - any driver error here means "cannot reach the database"
        raise EnvironmentProblem(f"cannot connect to the database {target.display}: {first_line(exc)}",
                                 hint="check MOBIUS_DATABASE_URL and that the server is running") from None
    try:
        yield conn
    finally:
        conn.close()


def table_names(conn: Connection) -> list[str]:
    return sorted(inspect(conn).get_table_names())


def first_line(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's boilerplate."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def find_pg_tool(name: str) -> str:
    """pg_dump, pg_restore, psql: the newest /usr/lib/postgresql/*/bin, else PATH; missing exits 3."""
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if candidates:
        return candidates[-1]
    found = shutil.which(name)
    if found:
        return found
    raise EnvironmentProblem(f"{name} is not installed; it is needed for PostgreSQL dumps and restores",
                             hint="install the PostgreSQL client tools (apt-get install postgresql-client)")


def pg_tool_env() -> dict[str, str]:
    """Environment for libpq tools: no password prompt ever (a prompt would hang a migration)."""
    return {**os.environ, "PGCONNECT_TIMEOUT": "10"}
