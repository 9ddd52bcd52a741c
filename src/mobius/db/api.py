"""What `mobius db` can do, as plain functions taking a Workspace (the CLI only calls these).

Every command that changes the database takes the migration lock first, then a checked dump
into the backups folder, then changes one transaction at a time with its history row.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, update

from mobius.config import Workspace
from mobius.db import dump as dumps
from mobius.db import history
from mobius.db.checks import check
from mobius.db.engine import DatabaseTarget, connect, first_line, table_names, target_for
from mobius.db.lock import migration_lock
from mobius.db.migration import Migration, discover, write_new_migration
from mobius.db.results import (
    ChecksumAcceptance,
    DatabaseRestore,
    DatabaseRollback,
    DatabaseStatus,
    MigrateResult,
    RehearsalReport,
    SyncResult,
    ValidateResult,
)
from mobius.db.runner import MigrationOutcome, Runner
from mobius.errors import InputError, MobiusError, VerificationError
from mobius.faults import kill_at
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress
from mobius.records import records_call
from mobius.results import Report, failed, passed
from mobius.safety.stamps import new_id

Confirm = Callable[[str], bool]


def _refuse(question: str) -> bool:
    raise InputError(f"{question} needs confirmation", hint="pass --yes to confirm")


def new_run_id() -> str:
    """The id of one migrate/rollback/verify run in the history tables (never parsed back)."""
    return new_id()


def _by_version(migrations: list[Migration]) -> dict[int, Migration]:
    return {m.version: m for m in migrations}


def drift(applied: dict[int, history.AppliedMigration], migrations: list[Migration]) -> list[dict[str, Any]]:
    """Applied migrations whose file changed or disappeared since they ran.

    An unfinished phased migration is not drift: its file may be fixed before `migrate` resumes it.
    """
    files = _by_version(migrations)
    found = []
    for version, row in sorted(applied.items()):
        if row.status != "applied":
            continue
        m = files.get(version)
        if m is None:
            found.append({"version": version, "name": row.name, "problem": "file missing",
                          "recorded_checksum": row.checksum})
        elif m.checksum != row.checksum:
            found.append({"version": version, "name": row.name, "problem": "checksum changed", "path": m.path,
                          "recorded_checksum": row.checksum, "file_checksum": m.checksum})
    return found


def _drift_error(found: list[dict[str, Any]], *, action: str) -> VerificationError:
    details = [f"{d['version']:04d}_{d['name']}: {d['problem']}" + (f" ({d['path']})" if d.get("path") else "")
               for d in found]
    return VerificationError(
        f"{action}: {len(found)} applied migration file(s) changed since they ran", details=details,
        hint="restore the original file, or accept the new one: mobius db accept-checksum VERSION --reason TEXT")


def _current_version(applied: dict[int, history.AppliedMigration]) -> int:
    done = [v for v, row in applied.items() if row.status == "applied"]
    return max(done) if done else 0


def _read_applied(target: DatabaseTarget) -> dict[int, history.AppliedMigration]:
    if target.is_sqlite and not target.sqlite_path.exists():
        return {}
    with connect(target) as conn, conn.begin():
        return history.applied(conn)


def _refuse_drift(applied: dict[int, history.AppliedMigration], migrations: list[Migration], *,
                  action: str) -> None:
    found = drift(applied, migrations)
    if found:
        raise _drift_error(found, action=action)


@dataclass
class _Session:
    """What a changing command holds: the target, one connection under the migration lock, the history read."""

    target: DatabaseTarget
    conn: Any
    applied: dict[int, history.AppliedMigration]


@contextlib.contextmanager
def _locked_session(ws: Workspace, target: DatabaseTarget) -> Iterator[_Session]:
    """The migration lock, a connection (foreign keys off, as migrations need), the history tables ensured and read."""
    with migration_lock(target, wait_s=ws.settings.db_advisory_lock_wait_s), \
            connect(target, enforce_foreign_keys=False) as conn:
        with conn.begin():
            history.ensure_history(conn)
            applied = history.applied(conn)
        yield _Session(target, conn, applied)


def database_is_empty(ws: Workspace, url: str | None = None) -> bool:
    """No tables at all (a new database)."""
    target = target_for(ws, url)
    if target.is_sqlite and not target.sqlite_path.exists():
        return True
    with connect(target) as conn, conn.begin():
        return not table_names(conn)


def database_status(ws: Workspace) -> DatabaseStatus:
    """Applied and pending migrations, the current version, and drift."""
    target = target_for(ws)
    migrations = discover(ws)
    applied = _read_applied(target)
    files = _by_version(migrations)
    unfinished = [row.to_dict() for row in applied.values() if row.status != "applied"]
    return DatabaseStatus(
        database=target.display,
        engine=target.dialect,
        current_version=_current_version(applied),
        applied=[{**row.to_dict(), "builtin": files[v].builtin if v in files else None}
                 for v, row in sorted(applied.items()) if row.status == "applied"],
        unfinished=unfinished,
        pending=[{"version": m.version, "name": m.name, "path": m.path, "phased": m.is_phased(target.dialect),
                  "irreversible": m.irreversible, "problems": m.problems()}
                 for m in migrations if m.version not in applied],
        drift=drift(applied, migrations),
    )


def _plan(migrations: list[Migration], applied: dict[int, history.AppliedMigration], to: int | None) -> list[Migration]:
    current = _current_version(applied)
    if to is not None:
        if to < current:
            raise InputError(f"--to {to} is below the current version {current}",
                             hint=f"use `mobius db rollback --to {to}` to go back")
        if to not in {0, *(m.version for m in migrations)}:
            raise InputError(f"--to {to}: no migration has that version", hint="see `mobius db status`")
    return [m for m in migrations
            if (to is None or m.version <= to) and (m.version not in applied or applied[m.version].status != "applied")]


@records_call("db.migrate", ref=lambda result: result.run_id, skip=lambda args: args["dry_run"])
def migrate_database(ws: Workspace, *, to: int | None = None, backup: bool = True, progress: Progress | None = None,
                     dry_run: bool = False, rehearse: bool = False, confirm: Confirm | None = None,
                     on_rehearsal: Callable[[RehearsalReport], None] | None = None,
                     migrations: list[Migration] | None = None) -> MigrateResult:
    """Apply pending migrations (up to `to`): lock, dump, optional rehearsal, then one transaction each.

    With `rehearse`, the plan runs first on a throwaway copy; `on_rehearsal` sees its report, then
    `confirm(question)` must say yes before the real run.
    """
    progress = progress or NoProgress()
    log = get_logger()
    target = target_for(ws)
    migrations = migrations if migrations is not None else discover(ws)
    run_id = new_run_id()
    result = MigrateResult(database=target.display, engine=target.dialect, run_id=run_id, dry_run=dry_run)
    if dry_run:
        applied = _read_applied(target)
        _refuse_drift(applied, migrations, action="migrate")
        result.plan = [_describe(m, target.dialect, applied.get(m.version)) for m in _plan(migrations, applied, to)]
        result.current_version = _current_version(applied)
        return result
    with _locked_session(ws, target) as session:
        conn, applied = session.conn, session.applied
        _refuse_drift(applied, migrations, action="migrate refused")
        plan = _plan(migrations, applied, to)
        problems = [p for m in plan for p in m.problems()]
        if problems:
            raise InputError(f"{len({m.version for m in plan if m.problems()})} pending migration(s) are not "
                             "ready to apply", details=problems,
                             hint="finish the files (mobius db status lists them)")
        if not backup and any(m.irreversible for m in plan):
            names = ", ".join(m.label for m in plan if m.irreversible)
            raise InputError(f"{names} is irreversible: its rollback needs the dump taken before it",
                             hint="run without --no-backup")
        result.planned = [m.label for m in plan]
        result.current_version = _current_version(applied)
        if not plan:
            return result
        dump = dumps.dump(target, dumps.dump_path_for(ws, target, label="premigrate")) if backup else None
        result.dump = dump
        if rehearse:
            result.rehearsal = _rehearse(ws, target, plan, applied, dump, run_id)
            if on_rehearsal is not None:
                on_rehearsal(result.rehearsal)
            question = f"apply {len(plan)} migration(s) to {target.display}?"
            if not (confirm or _refuse)(question):
                raise InputError("migration not confirmed; nothing was applied (the rehearsal copy is gone)")
        runner = Runner(target, conn, run_id=run_id, backfill_pause_s=ws.settings.db_backfill_pause_ms / 1000)
        dump_path = str(dump.path) if dump else None
        changed_since_dump = False
        progress.start("migrate", total=len(plan), unit="migrations")
        try:
            for m in plan:
                if m.irreversible and changed_since_dump:
                    dump_path = str(dumps.dump(target, dumps.dump_path_for(ws, target, label=f"pre{m.version:04d}"))
                                    .path)
                outcome = runner.apply(m, dump_path=dump_path, resume=applied.get(m.version))
                result.applied.append(outcome)
                changed_since_dump = True
                progress.advance()
        finally:
            progress.finish()
        with conn.begin():
            result.current_version = _current_version(history.applied(conn))
    log.info("db.migrate.done", applied=len(result.applied), version=result.current_version)
    return result


def _describe(m: Migration, dialect: str, row: history.AppliedMigration | None) -> dict[str, Any]:
    sections = {name: [s.sql for s in m.statements(name, dialect)]
                for name in ("up", "backfill", "no-transaction", "verify") if m.statements(name, dialect)}
    return {"version": m.version, "name": m.name, "path": m.path, "phased": m.is_phased(dialect),
            "irreversible": m.irreversible, "resume_phase": row.phase if row else None, "sql": sections}


def _rehearse(ws: Workspace, target: DatabaseTarget, plan: list[Migration],
              applied: dict[int, history.AppliedMigration], dump: dumps.Dump | None, run_id: str) -> RehearsalReport:
    """Apply `plan` to a throwaway copy restored from the fresh dump; report durations and verify results."""
    log = get_logger()
    ws.state.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".mobius-rehearsal-", dir=ws.state))
    copy: DatabaseTarget | None = None
    outcomes: list[MigrationOutcome] = []
    failure: MobiusError | None = None
    started = time.monotonic()
    try:
        source = dump or dumps.dump(target, workdir / ("source" + (dumps.SQLITE_SUFFIX if target.is_sqlite
                                                                      else dumps.PG_SUFFIX)))
        if target.is_sqlite:
            copy = target.with_database(str(workdir / "rehearsal.sqlite3"))
            shutil.copyfile(source.path, copy.sqlite_path)
        else:
            copy = target.with_database(f"{target.name[:40]}_rehearsal_{secrets.token_hex(4)}")
            _admin_sql(target, f'CREATE DATABASE "{copy.name}"')
            dumps.restore(copy, source.path)
        with connect(copy, enforce_foreign_keys=False) as conn:
            runner = Runner(copy, conn, run_id=f"{run_id}-rehearsal")
            for m in plan:
                try:
                    outcomes.append(runner.apply(m, dump_path=None, resume=applied.get(m.version)))
                except MobiusError as exc:
                    failure = exc
                    outcomes.append(MigrationOutcome(m.version, m.name, "failed", error=exc.message))
                    break
    finally:
        if copy is not None and not copy.is_sqlite:
            with contextlib.suppress(MobiusError):
                _admin_sql(target, f'DROP DATABASE IF EXISTS "{copy.name}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)
    report = RehearsalReport(ok=failure is None, seconds=round(time.monotonic() - started, 3), migrations=outcomes)
    log.info("db.rehearsal.done", ok=failure is None, migrations=len(outcomes))
    if failure is not None:
        raise VerificationError(f"rehearsal failed, the real database was not touched: {failure.message}",
                                hint=failure.hint, details=[f"{o.version:04d}_{o.name}: {o.status} {o.execution_ms} ms"
                                                            for o in outcomes])
    return report


def _admin_sql(target: DatabaseTarget, sql: str) -> None:
    """CREATE/DROP DATABASE: outside a transaction, from a session on the server's maintenance database."""
    with connect(target.with_database("postgres")) as conn:
        try:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(sql)
        except Exception as exc:  # noqa: BLE001 - a driver error: say which statement and why
            raise VerificationError(f"{sql} failed on {target.display}: {first_line(exc)}",
                                    hint="the rehearsal needs CREATE DATABASE rights on the server") from None


@records_call("db.rollback", ref=lambda result: result.run_id)
def rollback_database(ws: Workspace, *, to: int | None = None, confirm: Confirm | None = None,
                      progress: Progress | None = None) -> DatabaseRollback:
    """Revert applied migrations above `to` (default: the latest one), newest first, after a dump."""
    confirm = confirm or _refuse
    progress = progress or NoProgress()
    target = target_for(ws)
    migrations = _by_version(discover(ws))
    run_id = new_run_id()
    result = DatabaseRollback(database=target.display, run_id=run_id)
    with _locked_session(ws, target) as session:
        conn, applied = session.conn, session.applied
        if not applied:
            raise InputError("no migration is applied; nothing to roll back")
        versions = sorted(applied, reverse=True)
        if to is None:
            to = versions[1] if len(versions) > 1 else 0
        if to < 0 or (to and to not in applied):
            raise InputError(f"--to {to} is not an applied version", hint="see `mobius db status`")
        targets = [v for v in versions if v > to]
        if not targets:
            raise InputError(f"already at version {to}; nothing to roll back")
        _refuse_drift({v: applied[v] for v in targets}, list(migrations.values()), action="rollback refused")
        labels = ", ".join(f"{v:04d}_{applied[v].name}" for v in targets)
        if not confirm(f"roll back {labels} on {target.display}?"):
            raise InputError("rollback not confirmed; nothing was changed")
        dump = dumps.dump(target, dumps.dump_path_for(ws, target, label="prerollback"))
        result.dump = dump
        runner = Runner(target, conn, run_id=run_id)
        progress.start("rollback", total=len(targets), unit="migrations")
        try:
            for version in targets:
                if version not in applied:
                    continue
                m = migrations[version]
                if m.irreversible:
                    result.rolled_back.append(_restore_for_rollback(ws, target, conn, m, applied[version],
                                                                      confirm, run_id))
                else:
                    result.rolled_back.append(runner.rollback(m))
                with conn.begin():
                    applied = history.applied(conn)
                progress.advance()
        finally:
            progress.finish()
        result.current_version = _current_version(applied)
    return result


def _restore_for_rollback(ws: Workspace, target: DatabaseTarget, conn: Any, m: Migration,
                          row: history.AppliedMigration, confirm: Confirm, run_id: str) -> MigrationOutcome:
    if not row.dump_path or not Path(row.dump_path).is_file():
        raise VerificationError(f"migration {m.label} is irreversible and its dump {row.dump_path} is missing",
                                hint="restore a backup taken before it with `mobius db restore FILE`")
    if not confirm(f"{m.label} is irreversible: restore {row.dump_path} (the database as it was before it)?"):
        raise InputError(f"rollback of {m.label} not confirmed; it is still applied")
    started = time.monotonic()
    _restore_keeping_events(target, conn, Path(row.dump_path), run_id=run_id, reason=f"rollback of {m.label}",
                            version=m.version)
    return MigrationOutcome(m.version, m.name, "restored", int((time.monotonic() - started) * 1000),
                            dump_path=row.dump_path)


def _restore_keeping_events(target: DatabaseTarget, conn: Any, dump_file: Path, *, run_id: str, reason: str,
                            version: int | None = None) -> None:
    """Restore the dump, then put back the events recorded since it (the event log only grows)."""
    with conn.begin():
        kept = history.all_events_after(conn, 0) if history.has_history(conn) else []
    dumps.restore(target, dump_file)
    with conn.begin():
        history.ensure_history(conn)
        history.reinsert_events(conn, kept)
        history.record_event(conn, "restore", version=version, run_id=run_id, dump=str(dump_file), reason=reason)


def verify_database(ws: Workspace) -> Report:
    """Re-run the verify queries of every applied migration: one Check each (observed: the query results)."""
    target = target_for(ws)
    migrations = _by_version(discover(ws))
    run_id = new_run_id()
    report = Report(f"db verify {target.display}")
    with connect(target, enforce_foreign_keys=False) as conn:
        with conn.begin():
            applied = history.applied(conn)
        runner = Runner(target, conn, run_id=run_id)
        for version, row in sorted(applied.items()):
            m = migrations.get(version)
            if m is None or row.status != "applied":
                continue
            try:
                with conn.begin():
                    results = [r.to_dict() for r in runner.run_verify(m)]
                check = passed(m.label, results, unit="verify queries", source=m.path.name)
            except MobiusError as exc:
                results, check = None, failed(m.label, source=m.path.name, detail=exc.message)
            with conn.begin():
                history.record_event(conn, "verify", version=version, run_id=run_id, ok=check.passed,
                                     results=results, error=check.detail or None)
            report.add(check)
    return report


def validate_database(ws: Workspace) -> ValidateResult:
    """Applied files unchanged since they ran (checksums); drift exits 2."""
    target = target_for(ws)
    migrations = discover(ws)
    applied = _read_applied(target)
    _refuse_drift(applied, migrations, action="validate")
    return ValidateResult(database=target.display, checked=len(applied))


@records_call("db.accept-checksum")
def accept_checksum(ws: Workspace, version: int, *, reason: str) -> ChecksumAcceptance:
    """Record the current file's checksum for an applied migration, with the reason, as an event."""
    if not reason.strip():
        raise InputError("accept-checksum needs a --reason", hint='e.g. --reason "comment typo fixed, SQL unchanged"')
    target = target_for(ws)
    migrations = _by_version(discover(ws))
    with migration_lock(target, wait_s=ws.settings.db_advisory_lock_wait_s), connect(target) as conn, conn.begin():
        applied = history.applied(conn)
        if version not in applied:
            raise InputError(f"migration {version:04d} is not applied", hint="see `mobius db status`")
        if version not in migrations:
            raise InputError(f"migration {version:04d} has no file", hint="restore the file first")
        old, new = applied[version].checksum, migrations[version].checksum
        if old != new:
            table = history.schema_migrations
            conn.execute(update(table).where(table.c.version == version).values(checksum=new))
            history.record_event(conn, "accept-checksum", version=version, old=old, new=new, reason=reason)
    return ChecksumAcceptance(version=version, old_checksum=old, new_checksum=new, changed=old != new, reason=reason)


def new_migration(ws: Workspace, name: str) -> Path:
    """Write the next numbered migration file from the template into the workspace's migrations/."""
    return write_new_migration(ws, name)


def check_database(ws: Workspace, url: str | None = None) -> Report:
    """The runbook's consistency checks, one Check each; the CLI exits 2 when one fails."""
    return check(target_for(ws, url))


def dump_database(ws: Workspace, out: Path | None = None) -> Path:
    """A checked dump of the workspace database (default: into the backups folder). Returns its path."""
    target = target_for(ws)
    return dumps.dump(target, out or dumps.dump_path_for(ws, target)).path


def restore_database(ws: Workspace, dump: Path, *, safety_dump: bool = True, lock_held: bool = False) -> None:
    """Replace the workspace database with `dump` (all or nothing), after dumping what it replaces.

    Takes the migration lock (unless the caller holds it: `lock_held`, see database_restore_lock);
    the event log keeps the events recorded since the dump.
    """
    restore_with_report(ws, dump, safety_dump=safety_dump, lock_held=lock_held)


def database_restore_lock(ws: Workspace) -> contextlib.AbstractContextManager[None]:
    """The migration lock a database restore needs, for callers that must hold it before their first change."""
    return migration_lock(target_for(ws), wait_s=ws.settings.db_advisory_lock_wait_s)


def check_restorable(ws: Workspace, dump: Path) -> None:
    """Refuse (before anything changes) a dump of another engine or one that does not read back."""
    target = target_for(ws)
    engine = dumps.dump_engine(dump)
    if engine != target.dialect:
        raise InputError(f"{dump} is a {engine} dump and the database is {target.dialect}",
                         hint="restore it into a database of the same engine")
    dumps.check_dump(dump, engine)


@records_call("db.restore")
def restore_with_report(ws: Workspace, dump: Path, *, safety_dump: bool = True,
                        lock_held: bool = False) -> DatabaseRestore:
    target = target_for(ws)
    dump = Path(dump).expanduser().resolve()
    if not dump.is_file():
        raise InputError(f"dump {dump} does not exist", hint="pass a file written by `mobius db dump`")
    lock = contextlib.nullcontext() if lock_held else database_restore_lock(ws)
    with lock:
        safety = None
        if safety_dump and not database_is_empty(ws):
            safety = dumps.dump(target, dumps.dump_path_for(ws, target, label="prerestore"))
        with connect(target) as conn:
            _restore_keeping_events(target, conn, dump, run_id=new_run_id(), reason="mobius db restore")
    return DatabaseRestore(database=target.display, restored=dump, safety_dump=safety.path if safety else None)


def check_sync(ws: Workspace, from_url: str, to_url: str) -> tuple[DatabaseTarget, DatabaseTarget]:
    """`db sync`'s refusals that need no connection (one engine, two databases, a source that exists), each with
    its message (exit 1); the source and target."""
    source, target = target_for(ws, from_url), target_for(ws, to_url)
    if source.dialect != target.dialect:
        raise InputError(f"cannot sync {source.dialect} into {target.dialect}", hint="both URLs must be one engine")
    if source.url == target.url:
        raise InputError("--from and --to are the same database")
    if source.is_sqlite and not source.sqlite_path.is_file():
        raise InputError(f"source database {source.sqlite_path} does not exist")
    return source, target


def dump_for_sync(ws: Workspace, from_url: str, *, label: str = "sync") -> Path:
    """The checked dump of the source that `sync_databases` restores, taken ahead by a caller with time to spare
    (env promote takes it while the target's backup runs, and passes it as `source_dump`), named with `label`."""
    source = target_for(ws, from_url)
    return dumps.dump(source, dumps.dump_path_for(ws, source, label=label)).path


@records_call("db.sync")
def sync_databases(ws: Workspace, from_url: str, to_url: str, *, overwrite: bool = False,
                   dump_target: bool = True, source_dump: Path | None = None) -> SyncResult:
    """Copy one database over another (the runbook's `pg_dump staging_db | psql production_db`), safely.

    The target is dumped first (`dump_target=False`: the caller already holds a checked dump of it, as env
    promote's snapshot does); a non-empty target is only replaced with `overwrite=True`; row counts of
    every table are compared afterwards. `source_dump`: the source's dump taken by `dump_for_sync` (checked
    again against its sidecar and by the restore); the row counts are still compared with the source as it is.
    """
    source, target = check_sync(ws, from_url, to_url)
    with migration_lock(target, wait_s=ws.settings.db_advisory_lock_wait_s):
        existing = {} if overwrite else _tables_and_rows(target)  # replaced either way: no need to count it
        if existing:
            raise InputError(f"target {target.display} is not empty ({len(existing)} tables)",
                             hint="pass --yes to replace it (it is dumped first)")
        target_dump = dumps.dump(target, dumps.dump_path_for(ws, target, label="presync")) if dump_target else None
        source_dump = Path(source_dump) if source_dump is not None else \
            dumps.dump(source, dumps.dump_path_for(ws, source, label="sync")).path
        dumps.restore(target, source_dump)
        kill_at("db.sync:restored")
        with ThreadPoolExecutor(2, thread_name_prefix="db-sync-count") as pool:  # each waits on its own server
            expected, actual = pool.map(_tables_and_rows, (source, target))
        if expected != actual:
            differ = [f"{t}: source {expected.get(t)} rows, target {actual.get(t)}"
                      for t in sorted(set(expected) | set(actual)) if expected.get(t) != actual.get(t)]
            raise VerificationError("sync: the target differs from the source after the copy", details=differ,
                                    hint=f"restore the target's previous state: mobius db restore {target_dump.path}"
                                    if target_dump else "the target's previous state is in the caller's backup")
    return SyncResult(source=source.display, target=target.display,
                      target_dump=target_dump.path if target_dump else None,
                      source_dump=source_dump, tables=actual)


def _tables_and_rows(target: DatabaseTarget) -> dict[str, int]:
    if target.is_sqlite and not target.sqlite_path.exists():
        return {}
    with connect(target) as conn, conn.begin():
        quote = conn.dialect.identifier_preparer.quote
        return {name: conn.exec_driver_sql(f"SELECT COUNT(*) FROM {quote(name)}").scalar() or 0
                for name in inspect(conn).get_table_names()}


def migration_events(ws: Workspace, version: int | None = None) -> list[dict[str, Any]]:
    """The append-only event log (for reports and tests)."""
    target = target_for(ws)
    with connect(target) as conn, conn.begin():
        return history.events(conn, version=version)


__all__ = ["accept_checksum", "check_database", "database_status", "dump_database", "migrate_database",
           "migration_events", "new_migration", "restore_database", "rollback_database", "sync_databases",
           "validate_database", "verify_database"]
