"""Fixtures for the database tests: a real PostgreSQL server started by the suite, and workspaces
parametrized over SQLite and PostgreSQL.

The server: initdb + pg_ctl in a temp folder, on a free port, unix socket in the same folder,
trust authentication, listening on 127.0.0.1 only; stopped at the end of the session. initdb
refuses to run as root, so under root the server binaries run as the `postgres` OS user.
Without PostgreSQL binaries the PostgreSQL tests skip, unless MOBIUS_TEST_REQUIRE_POSTGRES=1
(set by .ci/run), where they fail.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from mobius.config import Workspace, load_workspace

REQUIRE_POSTGRES = os.environ.get("MOBIUS_TEST_REQUIRE_POSTGRES") == "1"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """A throwaway PostgreSQL cluster: `url(db)` for a database on it, `create_database()` for a fresh one."""

    def __init__(self, bindir: Path, root: Path):
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        if self.as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        init = self._run(self.bindir / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                         "--locale=C", "--no-sync")
        if init.returncode:
            raise RuntimeError(f"initdb failed: {init.stderr or init.stdout}")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60 "
                   # no WAL the tests did not cause: the change tokens (db.changes) read the WAL position, and a
                   # test that proves a command writes none must not see autovacuum's or the background writer's
                   # standby snapshots (wal_level replica logs one every 15 s of activity)
                   "-c wal_level=minimal -c max_wal_senders=0 -c autovacuum=off")
        started = self._run(self.bindir / "pg_ctl", "-D", self.data, "-o", options, "-l", self.root / "server.log",
                            "-w", "-t", "60", "start")
        if started.returncode:
            log = (self.root / "server.log").read_text(errors="replace") if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {started.stderr or started.stdout}\n{log}")

    def stop(self) -> None:
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        engine = create_engine(self.url().replace("postgresql://", "postgresql+psycopg://"),
                               isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(sql)
        finally:
            engine.dispose()

    def create_database(self) -> str:
        name = f"t_{secrets.token_hex(5)}"
        self.admin(f'CREATE DATABASE "{name}"')
        return name


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The suite's own PostgreSQL server (session-scoped)."""
    bindir = _pg_bin()
    if bindir is None:
        message = "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb); install postgresql"
        if REQUIRE_POSTGRES:
            pytest.fail(message + " (MOBIUS_TEST_REQUIRE_POSTGRES=1)")
        pytest.skip(message)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            if REQUIRE_POSTGRES:
                pytest.fail("running as root and there is no postgres OS user to run the server")
            pytest.skip("running as root and there is no postgres OS user to run the server")
    root = Path(tempfile.mkdtemp(prefix="mobius-pg-"))
    server = PostgresServer(bindir, root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the suite's server."""
    name = postgres.create_database()
    yield postgres.url(name)
    with contextlib.suppress(Exception):
        postgres.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


def make_workspace(root: Path, database_url: str | None, **settings: object) -> Workspace:
    """A workspace folder with a .env naming its database and settings (not initialized: no database yet)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["MOBIUS_ENV=development"]
    if database_url:
        lines.append(f"MOBIUS_DATABASE_URL={database_url}")
    lines += [f"MOBIUS_{key.upper()}={value}" for key, value in settings.items()]
    (root / ".env").write_text("\n".join(lines) + "\n")
    (root / "backups").mkdir(exist_ok=True)
    return load_workspace(root)


@pytest.fixture
def db_workspace(request: pytest.FixtureRequest, engine: str, tmp_path: Path):
    """A factory: `db_workspace(**settings)` -> Workspace on this test's engine (SQLite file or fresh PG db)."""
    url = request.getfixturevalue("pg_url") if engine == "postgresql" else None

    def factory(**settings: object) -> Workspace:
        return make_workspace(tmp_path / "ws", url, **settings)

    return factory


def sa_url(ws: Workspace) -> str:
    from mobius.db.engine import target_for

    return target_for(ws).url.render_as_string(hide_password=False)


def query(ws: Workspace, sql: str, params: dict | None = None) -> list[tuple]:
    """Rows of one query on the workspace database (a separate connection, committed)."""
    engine = create_engine(sa_url(ws))
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql), params or {})
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def schema_snapshot(ws: Workspace, *, exclude_history: bool = False) -> dict:
    """Tables, columns (name, type, nullability, default), keys, foreign keys and indexes, comparable with ==."""
    engine = create_engine(sa_url(ws))
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            snapshot = {}
            for table in sorted(inspector.get_table_names()):
                if exclude_history and table.startswith("schema_migration"):
                    continue
                snapshot[table] = {
                    "columns": [(c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                                for c in inspector.get_columns(table)],
                    "pk": inspector.get_pk_constraint(table).get("constrained_columns"),
                    "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"])
                                  for f in inspector.get_foreign_keys(table)),
                    "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                      for i in inspector.get_indexes(table)),
                }
            return snapshot
    finally:
        engine.dispose()


def write_migration(ws: Workspace, filename: str, body: str) -> Path:
    ws.migrations.mkdir(parents=True, exist_ok=True)
    path = ws.migrations / filename
    path.write_text(body)
    return path
