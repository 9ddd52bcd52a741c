"""The migration history kept inside the database itself.

`schema_migrations`: one row per applied (or phased, in-progress, failed) migration, written in
the same transaction as the change it records. `schema_migration_events`: every apply, verify,
failure, rollback, checksum acceptance and restore, append-only (insert only; triggers refuse
updates and deletes). `schema_migration_backfill`: how far each batched backfill got, committed
with each batch, so a crash resumes at the next batch.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    inspect,
    select,
    update,
)

from mobius.results import dumps
from mobius.safety.stamps import utc_iso

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("applied_at", String(40), nullable=False),
    Column("execution_ms", Integer, nullable=False, default=0),
    Column("applied_by", String(200), nullable=False),
    Column("run_id", String(40), nullable=False),
    Column("dump_path", Text),
    Column("status", String(20), nullable=False),  # applied | in_progress | failed
    Column("phase", String(20), nullable=False, default="done"),  # up | backfill | no-transaction | verify | done
)

schema_migration_events = Table(
    "schema_migration_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", String(40), nullable=False),
    Column("version", Integer),
    Column("event", String(40), nullable=False),
    Column("run_id", String(40)),
    Column("actor", String(200), nullable=False),
    Column("detail", Text),
)

schema_migration_backfill = Table(
    "schema_migration_backfill", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("step", Integer, primary_key=True, autoincrement=False),  # 0..n-1 backfill statements, 1000+ no-tx
    Column("next_key", BigInteger),
    Column("rows_done", BigInteger, nullable=False, default=0),
    Column("finished", Integer, nullable=False, default=0),
    Column("updated_at", String(40), nullable=False),
)

HISTORY_TABLES = ("schema_migrations", "schema_migration_events", "schema_migration_backfill")

_APPEND_ONLY = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS schema_migration_events_no_update BEFORE UPDATE ON schema_migration_events "
        "BEGIN SELECT RAISE(ABORT, 'schema_migration_events is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS schema_migration_events_no_delete BEFORE DELETE ON schema_migration_events "
        "BEGIN SELECT RAISE(ABORT, 'schema_migration_events is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION schema_migration_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'schema_migration_events is append-only'; END $$",
        "DROP TRIGGER IF EXISTS schema_migration_events_append_only ON schema_migration_events",
        "CREATE TRIGGER schema_migration_events_append_only BEFORE UPDATE OR DELETE ON schema_migration_events "
        "FOR EACH ROW EXECUTE FUNCTION schema_migration_events_append_only()",
    ],
}


def now() -> str:
    return utc_iso()


def actor() -> str:
    """Who ran it: user@host, as recorded in applied_by."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def ensure_history(conn: Connection) -> None:
    """Create the history tables if missing (inside the caller's transaction)."""
    existing = set(inspect(conn).get_table_names())
    if set(HISTORY_TABLES) <= existing:
        return
    metadata.create_all(conn, checkfirst=True)
    if "schema_migration_events" not in existing:
        for sql in _APPEND_ONLY[conn.dialect.name if conn.dialect.name == "sqlite" else "postgresql"]:
            conn.exec_driver_sql(sql)


def has_history(conn: Connection) -> bool:
    return "schema_migrations" in inspect(conn).get_table_names()


@dataclass
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: str
    execution_ms: int
    applied_by: str
    run_id: str
    dump_path: str | None
    status: str
    phase: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def applied(conn: Connection) -> dict[int, AppliedMigration]:
    if not has_history(conn):
        return {}
    rows = conn.execute(select(schema_migrations).order_by(schema_migrations.c.version)).mappings()
    return {row["version"]: AppliedMigration(**row) for row in rows}


def record_event(conn: Connection, event: str, *, version: int | None = None, run_id: str | None = None,
                 **detail: Any) -> None:
    conn.execute(insert(schema_migration_events).values(
        at=now(), version=version, event=event, run_id=run_id, actor=actor(),
        detail=dumps(detail) if detail else None))


def events(conn: Connection, *, version: int | None = None) -> list[dict[str, Any]]:
    if "schema_migration_events" not in inspect(conn).get_table_names():
        return []
    query = select(schema_migration_events).order_by(schema_migration_events.c.id)
    if version is not None:
        query = query.where(schema_migration_events.c.version == version)
    return [dict(row) for row in conn.execute(query).mappings()]


def upsert_applied(conn: Connection, row: dict[str, Any]) -> None:
    table = schema_migrations
    exists = conn.execute(select(table.c.version).where(table.c.version == row["version"])).first()
    if exists:
        conn.execute(update(table).where(table.c.version == row["version"]).values(**row))
    else:
        conn.execute(insert(table).values(**row))


def set_state(conn: Connection, version: int, *, status: str, phase: str, **extra: Any) -> None:
    conn.execute(update(schema_migrations).where(schema_migrations.c.version == version)
                 .values(status=status, phase=phase, **extra))


def forget(conn: Connection, version: int) -> None:
    """Remove a migration's row and its backfill progress (rollback; same transaction as its down)."""
    conn.execute(delete(schema_migrations).where(schema_migrations.c.version == version))
    conn.execute(delete(schema_migration_backfill).where(schema_migration_backfill.c.version == version))


def backfill_progress(conn: Connection, version: int, step: int) -> dict[str, Any] | None:
    t = schema_migration_backfill
    row = conn.execute(select(t).where(t.c.version == version, t.c.step == step)).mappings().first()
    return dict(row) if row else None


def save_backfill_progress(conn: Connection, version: int, step: int, *, next_key: int | None, rows_done: int,
                           finished: bool) -> None:
    t = schema_migration_backfill
    values = {"next_key": next_key, "rows_done": rows_done, "finished": int(finished), "updated_at": now()}
    if backfill_progress(conn, version, step) is None:
        conn.execute(insert(t).values(version=version, step=step, **values))
    else:
        conn.execute(update(t).where(t.c.version == version, t.c.step == step).values(**values))


def all_events_after(conn: Connection, last_id: int) -> list[dict[str, Any]]:
    t = schema_migration_events
    return [dict(r) for r in conn.execute(select(t).where(t.c.id > last_id).order_by(t.c.id)).mappings()]


def reinsert_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Put back events a restore of an older dump would lose (the log stays append-only across restores)."""
    if not rows:
        return
    present = {r[0] for r in conn.execute(select(schema_migration_events.c.id))}
    missing = [r for r in rows if r["id"] not in present]
    if missing:
        conn.execute(insert(schema_migration_events), missing)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('schema_migration_events', 'id'), "
                                 "(SELECT MAX(id) FROM schema_migration_events))")
