"""Applying and reverting migrations, one transaction at a time.

An unphased migration's up section, its verify queries, (on SQLite) `PRAGMA foreign_key_check`
and its history row commit together or not at all. A phased migration commits its up section,
then backfills in committed batches (progress saved with each batch), then runs its
no-transaction statements, then verifies; a failure in any phase is recorded, and the next
`migrate` resumes from where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select, table, text
from sqlalchemy import column as sql_column
from sqlalchemy.exc import SQLAlchemyError

from mobius.db import history
from mobius.db.engine import DatabaseTarget, first_line
from mobius.db.migration import Migration
from mobius.db.sqltext import Statement
from mobius.errors import InputError, MobiusError, OperationTimeout, VerificationError
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress

NO_TX_STEP = 1000  # backfill progress rows: steps 0.. are backfill statements, 1000.. no-transaction statements
TIMEOUT_SQLSTATES = {"55P03": "lock_timeout", "57014": "statement_timeout"}


@dataclass
class VerifyQuery:
    query: str
    value: Any
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "value": self.value, "ok": self.ok}


@dataclass
class MigrationOutcome:
    """What happened to one migration in this run."""

    version: int
    name: str
    status: str  # applied | failed | rolled_back | restored
    execution_ms: int = 0
    verify: list[VerifyQuery] = field(default_factory=list)
    phased: bool = False
    backfilled_rows: int = 0
    dump_path: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["verify"] = [v.to_dict() for v in self.verify]
        return out


class MigrationFailed(VerificationError):
    """A statement or a verify query failed; the transaction was rolled back."""


def classify(exc: BaseException, where: str) -> MobiusError:
    """A database error as a Mobius error: lock and statement timeouts exit 4, the rest exit 2."""
    if isinstance(exc, MobiusError):
        return exc
    orig = getattr(exc, "orig", None) or exc
    sqlstate = getattr(orig, "sqlstate", None)
    message = first_line(exc)
    if sqlstate in TIMEOUT_SQLSTATES:
        setting = TIMEOUT_SQLSTATES[sqlstate]
        return OperationTimeout(
            f"{where}: {message} ({setting} reached); nothing of this step was committed",
            hint="a long transaction holds a lock on the table; retry when it ends, or raise "
                 f"MOBIUS_DB_{setting.upper()}_MS")
    if "database is locked" in message:
        return OperationTimeout(f"{where}: {message}", hint="another process holds the SQLite write lock; retry")
    return MigrationFailed(f"{where}: {message}")


def verify_value_ok(value: Any) -> bool:
    """Verify queries pass on 0 (a count of bad rows) or boolean true; 1 on SQLite is a count, not true."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) or type(value).__name__ == "Decimal":
        return value == 0
    return False


class Runner:
    """Runs migrations against one database connection, recording each step in its history."""

    def __init__(self, target: DatabaseTarget, conn: Connection, *, run_id: str, progress: Progress | None = None,
                 backfill_pause_s: float = 0.0):
        self.target = target
        self.conn = conn
        self.run_id = run_id
        self.progress = progress or NoProgress()
        self.backfill_pause_s = backfill_pause_s
        self.log = get_logger()

    @property
    def dialect(self) -> str:
        return self.target.dialect

    # -- statements ---------------------------------------------------------------------------------------

    def _execute(self, m: Migration, section: str, statement: Statement) -> None:
        try:
            self.conn.exec_driver_sql(statement.sql, execution_options={"no_parameters": True})
        except SQLAlchemyError as exc:
            raise classify(exc, f"migration {m.label} failed at {m.path.name}:{statement.line} ({section})") from None

    def run_verify(self, m: Migration) -> list[VerifyQuery]:
        """Run the verify queries inside the current transaction; raises MigrationFailed on the first failure."""
        results = []
        for statement in m.statements("verify", self.dialect):
            try:
                rows = self.conn.exec_driver_sql(statement.sql,
                                                 execution_options={"no_parameters": True}).fetchmany(2)
            except SQLAlchemyError as exc:
                raise classify(exc, f"verify query of {m.label} failed at {m.path.name}:{statement.line}") from None
            value = rows[0][0] if len(rows) == 1 and len(rows[0]) else None
            result = VerifyQuery(_one_line(statement.sql), _plain(value), len(rows) == 1 and verify_value_ok(value))
            results.append(result)
            if not result.ok:
                shape = f"returned {value!r}" if len(rows) == 1 else f"returned {len(rows)} rows, not one"
                raise MigrationFailed(f"verify of {m.label} failed at {m.path.name}:{statement.line}: "
                                      f"{result.query} {shape} (expected 0 or true)",
                                      hint="fix the data or the migration; nothing of it was committed")
        return results

    def _foreign_key_check(self, m: Migration) -> None:
        if self.dialect != "sqlite":
            return
        rows = self.conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if rows:
            details = [f"{r[0]} rowid {r[1]} -> {r[2]}" for r in rows[:20]]
            raise MigrationFailed(f"migration {m.label} leaves {len(rows)} rows with a missing foreign key parent",
                                  hint="fix the migration (see docs/db.md, table rebuilds)", details=details)

    def _failed(self, m: Migration, exc: MobiusError, *, phase: str, phased_row: bool) -> None:
        """Record the failure in its own transaction, after the failed one was rolled back."""
        self.log.error("db.migrate.failed", version=m.version, phase=phase, error=exc.message)
        try:
            with self.conn.begin():
                if phased_row:
                    history.set_state(self.conn, m.version, status="failed", phase=phase)
                history.record_event(self.conn, "failed", version=m.version, run_id=self.run_id, phase=phase,
                                     error=exc.message)
        except SQLAlchemyError as record_error:  # the connection itself may be gone; the failure still stands
            self.log.error("db.history.unrecorded", version=m.version, error=first_line(record_error))

    # -- apply --------------------------------------------------------------------------------------------

    def apply(self, m: Migration, *, dump_path: str | None,
              resume: history.AppliedMigration | None = None) -> MigrationOutcome:
        """Apply (or resume) one migration; raises a MobiusError after recording a failure."""
        if m.is_phased(self.dialect):
            return self._apply_phased(m, dump_path=dump_path, resume=resume)
        started = time.monotonic()
        try:
            with self.conn.begin():
                for statement in m.statements("up", self.dialect):
                    self._execute(m, "up", statement)
                results = self.run_verify(m)
                self._foreign_key_check(m)
                elapsed = int((time.monotonic() - started) * 1000)
                history.upsert_applied(self.conn, self._row(m, dump_path, elapsed, status="applied", phase="done"))
                history.record_event(self.conn, "verify", version=m.version, run_id=self.run_id,
                                     results=[r.to_dict() for r in results])
                history.record_event(self.conn, "apply", version=m.version, run_id=self.run_id,
                                     execution_ms=elapsed, checksum=m.checksum, dump=dump_path)
        except (MobiusError, SQLAlchemyError) as exc:
            error = classify(exc, f"migration {m.label}")
            self._failed(m, error, phase="up", phased_row=False)
            raise error from None
        self.log.info("db.migrate.applied", version=m.version, name=m.name, ms=elapsed)
        return MigrationOutcome(m.version, m.name, "applied", elapsed, results, dump_path=dump_path)

    def _row(self, m: Migration, dump_path: str | None, elapsed: int, *, status: str, phase: str) -> dict[str, Any]:
        return {"version": m.version, "name": m.name, "checksum": m.checksum, "applied_at": history.now(),
                "execution_ms": elapsed, "applied_by": history.actor(), "run_id": self.run_id,
                "dump_path": dump_path, "status": status, "phase": phase}

    def _apply_phased(self, m: Migration, *, dump_path: str | None,
                      resume: history.AppliedMigration | None) -> MigrationOutcome:
        started = time.monotonic()
        spent_before = resume.execution_ms if resume else 0
        phase = resume.phase if resume else "up"
        if resume:
            dump_path = resume.dump_path or dump_path
            with self.conn.begin():
                history.set_state(self.conn, m.version, status="in_progress", phase=phase, checksum=m.checksum)
                history.record_event(self.conn, "resume", version=m.version, run_id=self.run_id, phase=phase,
                                     checksum=m.checksum, previous_checksum=resume.checksum)
        try:
            if phase == "up":
                up_started = time.monotonic()
                with self.conn.begin():
                    for statement in m.statements("up", self.dialect):
                        self._execute(m, "up", statement)
                    self._foreign_key_check(m)
                    history.upsert_applied(self.conn, self._row(m, dump_path, 0, status="in_progress",
                                                                phase="backfill"))
                    history.record_event(self.conn, "up-committed", version=m.version, run_id=self.run_id,
                                         execution_ms=int((time.monotonic() - up_started) * 1000))
                phase = "backfill"
            rows = 0
            if phase == "backfill":
                rows = self._backfill(m)
                with self.conn.begin():
                    history.set_state(self.conn, m.version, status="in_progress", phase="no-transaction")
                phase = "no-transaction"
            if phase == "no-transaction":
                self._no_transaction(m)
                with self.conn.begin():
                    history.set_state(self.conn, m.version, status="in_progress", phase="verify")
                phase = "verify"
            with self.conn.begin():
                results = self.run_verify(m)
                self._foreign_key_check(m)
                elapsed = spent_before + int((time.monotonic() - started) * 1000)
                history.set_state(self.conn, m.version, status="applied", phase="done", execution_ms=elapsed,
                                  applied_at=history.now(), run_id=self.run_id)
                history.record_event(self.conn, "verify", version=m.version, run_id=self.run_id,
                                     results=[r.to_dict() for r in results])
                history.record_event(self.conn, "apply", version=m.version, run_id=self.run_id,
                                     execution_ms=elapsed, checksum=m.checksum, dump=dump_path, phased=True)
        except (MobiusError, SQLAlchemyError) as exc:
            error = classify(exc, f"migration {m.label} ({phase} phase)")
            error.hint = error.hint or "run `mobius db migrate` to resume it, or `mobius db rollback` to revert it"
            self._failed(m, error, phase=phase, phased_row=phase != "up")
            raise error from None
        self.log.info("db.migrate.applied", version=m.version, name=m.name, ms=elapsed, phased=True)
        return MigrationOutcome(m.version, m.name, "applied", elapsed, results, phased=True, backfilled_rows=rows,
                       dump_path=dump_path)

    def _backfill(self, m: Migration) -> int:
        """Each batch commits with its progress row, so a crash loses at most the batch in flight."""
        spec = m.backfill(self.dialect)
        if spec is None:
            return 0
        total = 0
        key = sql_column(spec.key)
        source = table(spec.table, key)
        for step, statement in enumerate(spec.statements):
            with self.conn.begin():
                saved = history.backfill_progress(self.conn, m.version, step)
                low, high = self.conn.execute(select(func.min(key), func.max(key)).select_from(source)).one()
            if saved and saved["finished"]:
                total += saved["rows_done"]
                continue
            next_key = saved["next_key"] if saved and saved["next_key"] is not None else low
            done = saved["rows_done"] if saved else 0
            if saved:
                self.log.info("db.backfill.resume", version=m.version, step=step, next_key=next_key, rows_done=done)
            batches = max(1, ((high or 0) - (next_key or 0)) // spec.batch + 1) if high is not None else 0
            self.progress.start(f"backfill {m.label}", total=batches, unit="batches")
            while next_key is not None and high is not None and next_key <= high:
                upper = next_key + spec.batch
                with self.conn.begin():
                    try:
                        result = self.conn.execute(text(statement.sql), {"lo": next_key, "hi": upper})
                    except SQLAlchemyError as exc:
                        raise classify(exc, f"backfill of {m.label} at {m.path.name}:{statement.line}, "
                                            f"keys [{next_key}, {upper})") from None
                    done += max(0, result.rowcount or 0)
                    history.save_backfill_progress(self.conn, m.version, step, next_key=upper, rows_done=done,
                                                   finished=False)
                next_key = upper
                self.progress.advance()
                if next_key > high:  # rows added meanwhile: keep going to the new end
                    with self.conn.begin():
                        high = self.conn.execute(select(func.max(key)).select_from(source)).scalar()
                if self.backfill_pause_s:
                    time.sleep(self.backfill_pause_s)
            self.progress.finish()
            with self.conn.begin():
                history.save_backfill_progress(self.conn, m.version, step, next_key=next_key, rows_done=done,
                                               finished=True)
                history.record_event(self.conn, "backfill", version=m.version, run_id=self.run_id, step=step,
                                     rows=done)
            total += done
        return total

    def _no_transaction(self, m: Migration) -> None:
        for index, statement in enumerate(m.statements("no-transaction", self.dialect)):
            step = NO_TX_STEP + index
            with self.conn.begin():
                saved = history.backfill_progress(self.conn, m.version, step)
            if saved and saved["finished"]:
                continue
            self._autocommit(m, statement)
            with self.conn.begin():
                history.save_backfill_progress(self.conn, m.version, step, next_key=None, rows_done=0, finished=True)

    def _autocommit(self, m: Migration, statement: Statement) -> None:
        where = f"migration {m.label} failed at {m.path.name}:{statement.line} (no-transaction)"
        try:
            if self.dialect == "sqlite":
                self.conn.connection.dbapi_connection.execute(statement.sql)
            else:
                raw = self.conn.connection.dbapi_connection
                raw.autocommit = True
                try:
                    raw.execute(statement.sql)
                finally:
                    raw.autocommit = False
        except Exception as exc:  # noqa: BLE001 - raw driver errors (sqlite3.Error, psycopg.Error)
            raise classify(exc, where) from None

    # -- rollback -----------------------------------------------------------------------------------------

    def rollback(self, m: Migration) -> MigrationOutcome:
        """Run the down section and remove the history row in one transaction."""
        if m.irreversible:
            raise InputError(f"migration {m.label} is irreversible; it is rolled back by restoring its dump")
        started = time.monotonic()
        try:
            with self.conn.begin():
                for statement in m.statements("down", self.dialect):
                    self._execute(m, "down", statement)
                self._foreign_key_check(m)
                history.forget(self.conn, m.version)
                elapsed = int((time.monotonic() - started) * 1000)
                history.record_event(self.conn, "rollback", version=m.version, run_id=self.run_id,
                                     execution_ms=elapsed)
        except (MobiusError, SQLAlchemyError) as exc:
            error = classify(exc, f"rollback of {m.label}")
            error.hint = "nothing of this rollback was committed; fix the down section and run it again"
            self.log.error("db.rollback.failed", version=m.version, error=error.message)
            with self.conn.begin():
                history.record_event(self.conn, "rollback-failed", version=m.version, run_id=self.run_id,
                                     error=error.message)
            raise error from None
        self.log.info("db.rollback.done", version=m.version, ms=elapsed)
        return MigrationOutcome(m.version, m.name, "rolled_back", elapsed)


def _one_line(sql: str) -> str:
    return " ".join(sql.split())[:200]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
