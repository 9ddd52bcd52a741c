"""`mobius db`: schema migrations, dumps and consistency checks; see mobius.db and docs/db.md."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import typer

from mobius.cli.context import current
from mobius.cli.options import DRY_RUN, YES, changes
from mobius.cli.output import confirm, emit, say
from mobius.errors import InputError

app = typer.Typer(name="db", help="Database schema migrations (SQLite or PostgreSQL), dumps and checks.",
                  no_args_is_help=True, rich_markup_mode=None)


def _db():  # noqa: ANN202
    """The db library, imported only when a db command runs: SQLAlchemy costs ~0.15 s of every start-up."""
    from mobius import db

    return db


@app.command("status")
def status_command() -> None:
    """Applied and pending migrations, the current version, drift.

    Example: mobius db status
    """
    result = _db().database_status(current.workspace())
    lines = [f"database {result.database} ({result.engine}), version {result.current_version}"]
    lines += [f"  applied  {r['version']:04d}_{r['name']}  {r['applied_at']}  {r['execution_ms']} ms"
              f"  by {r['applied_by']}" for r in result.applied]
    lines += [f"  {r['status']:<8} {r['version']:04d}_{r['name']}  phase {r['phase']} (mobius db migrate resumes it)"
              for r in result.unfinished]
    lines += [f"  pending  {p['version']:04d}_{p['name']}" + ("  (phased)" if p["phased"] else "")
              + ("  (irreversible)" if p["irreversible"] else "") + ("  (not ready)" if p["problems"] else "")
              for p in result.pending]
    lines += [f"  DRIFT    {d['version']:04d}_{d['name']}: {d['problem']}" for d in result.drift]
    emit(result, lines)


@app.command("migrate")
@changes
def migrate_command(
    to: int = typer.Option(None, "--to", help="Stop at this version (default: all pending)."),
    dry_run: bool = DRY_RUN,
    rehearse: bool = typer.Option(False, "--rehearse", help="Apply to a throwaway copy first, report, then ask."),
    no_backup: bool = typer.Option(False, "--no-backup", help="Skip the dump taken before migrating."),
    yes: bool = YES,
) -> None:
    """Apply pending migrations: lock, dump (checked readable), then each in one transaction with its verify.

    Example: mobius db migrate --rehearse
    """
    ws = current.workspace()
    if dry_run:  # changes nothing: no operation
        result = _db().migrate_database(ws, to=to, progress=current.progress(), dry_run=True)
    else:
        from mobius.ops.plain import run_step

        result = run_step(ws, "db.migrate", "db.migrate", {"to": to, "backup": not no_backup, "rehearse": rehearse},
                          say=say, confirm=partial(confirm, yes=yes), progress=current.progress())
    if dry_run:
        plan = result.plan or []
        lines = [f"dry run on {result.database} (version {result.current_version}): "
                 f"{len(plan)} migration(s) would run"]
        for item in plan:
            lines.append(f"-- {item['version']:04d}_{item['name']}" + (" (phased)" if item["phased"] else ""))
            for section, statements in item["sql"].items():
                lines.append(f"-- [{section}]")
                lines += [statement.rstrip(";") + ";" for statement in statements]
        emit(result, lines)
        return
    lines = []
    if result.rehearsal:
        lines.append(f"rehearsal ok on a throwaway copy in {result.rehearsal.seconds} s (copy dropped)")
    if result.dump:
        lines.append(f"dump {result.dump.path} ({result.dump.bytes} bytes, checked readable)")
    lines += [f"applied {o.version:04d}_{o.name} in {o.execution_ms} ms, verify ok ({len(o.verify)} queries)"
              for o in result.applied]
    if not result.applied:
        lines.append(f"nothing to migrate: {result.database} is at version {result.current_version}")
    else:
        lines.append(f"database {result.database} is at version {result.current_version}")
    emit(result, lines)


@app.command("rollback")
@changes
def rollback_command(
    to: int = typer.Option(None, "--to", help="Roll back to this version (default: undo the latest migration)."),
    yes: bool = YES,
) -> None:
    """Run down sections newest first, each in a transaction with its history; irreversible ones restore their dump.

    Example: mobius db rollback --to 1 --yes
    """
    from mobius.ops.plain import run_step

    result = run_step(current.workspace(), "db.rollback", "db.rollback", {"to": to}, say=say,
                      confirm=partial(confirm, yes=yes), progress=current.progress())
    lines = [f"dump {result.dump.path if result.dump else None} (taken before the rollback)"]
    lines += [f"{o.status.replace('_', ' ')} {o.version:04d}_{o.name} in {o.execution_ms} ms"
              for o in result.rolled_back]
    lines.append(f"database {result.database} is at version {result.current_version}")
    emit(result, lines)


@app.command("verify")
def verify_command() -> None:
    """Re-run the verify queries of every applied migration (exit 2 if any fails).

    Example: mobius db verify
    """
    report = _db().verify_database(current.workspace())
    report.raise_if_failed(hint="the data no longer satisfies them; fix the data")
    emit(report, [f"verify ok {c.name} ({len(c.observed)} queries)" for c in report.checks]
         or ["no applied migrations"])


@app.command("check")
def check_command() -> None:
    """Consistency: COUNT(*) = COUNT(DISTINCT key) per table, foreign keys, SQLite integrity (exit 2 on a problem).

    Example: mobius db check
    """
    report = _db().check_database(current.workspace())
    report.raise_if_failed(hint="restore a dump or repair the rows named above")
    emit(report, [f"{report.subject}: consistent ({len(report.checks)} checks passed)",
                  *(f"  {c.line()}" for c in report.checks if not c.passed)])  # skipped ones are said


@app.command("validate")
def validate_command() -> None:
    """Applied migration files are unchanged since they ran (sha256); drift exits 2.

    Example: mobius db validate
    """
    result = _db().validate_database(current.workspace())
    emit(result, f"{result.checked} applied migration file(s) unchanged")


@app.command("accept-checksum")
@changes
def accept_checksum_command(
    version: int = typer.Argument(..., help="The applied migration's version."),
    reason: str = typer.Option(..., "--reason", help="Why the changed file is accepted (recorded)."),
) -> None:
    """Accept an applied migration's changed file explicitly; the reason goes into the event log.

    Example: mobius db accept-checksum 3 --reason "comment typo fixed, SQL unchanged"
    """
    result = _db().accept_checksum(current.workspace(), version, reason=reason)
    emit(result, f"{version:04d}: checksum {'accepted' if result.changed else 'already matches the file'}")


@app.command("new")
@changes
def new_command(name: str = typer.Argument(..., help="What the migration does, e.g. add_publisher.")) -> None:
    """Write the next numbered migration file (up, down, verify sections) into the workspace's migrations/.

    Example: mobius db new add_publisher
    """
    path = _db().new_migration(current.workspace(), name)
    emit({"path": path}, f"created {path}")


@app.command("dump")
@changes
def dump_command(out: Path = typer.Option(None, "--out", help="Dump file (default: into the backups folder).")) -> None:
    """A dump checked readable (SQLite backup API; PostgreSQL pg_dump -Fc + pg_restore --list), with .sha256.

    Example: mobius db dump --out mobius-copy.sqlite3
    """
    path = _db().dump_database(current.workspace(), out)
    emit({"path": path, "bytes": path.stat().st_size}, f"dump {path} ({path.stat().st_size} bytes, checked readable)")


@app.command("restore")
@changes
def restore_command(
    dump: Path = typer.Argument(..., help="A file written by `mobius db dump` (or taken before a migration)."),
    yes: bool = YES,
) -> None:
    """Replace the database with a dump, all or nothing; what it replaces is dumped first.

    Example: mobius db restore mobius-copy.sqlite3 --yes
    Needs first: mobius db dump --out mobius-copy.sqlite3
    """
    from mobius.ops.plain import run_step

    ws = current.workspace()
    if not _db().database_is_empty(ws) and not confirm(f"replace the database with {dump}?", yes=yes):
        raise InputError("restore not confirmed; nothing was changed")
    result = run_step(ws, "db.restore", "db.restore", {"dump": str(dump.expanduser().resolve())},
                      say=say)
    lines = [f"restored {result.restored} into {result.database}"]
    if result.safety_dump:
        lines.append(f"the previous database is in {result.safety_dump}")
    emit(result, lines)


@app.command("sync")
@changes
def sync_command(
    from_url: str = typer.Option(..., "--from", help="Source database URL (e.g. staging)."),
    to_url: str = typer.Option(..., "--to", help="Target database URL (e.g. production)."),
    yes: bool = YES,
) -> None:
    """Copy one database over another, dumping the target first; compares row counts afterwards.

    PostgreSQL: --from postgresql://host/staging --to postgresql://host/production.

    Example: mobius db sync --from sqlite:///mobius.db --to sqlite:///mobius-copy.db --yes
    """
    from mobius.ops.plain import run_step

    result = run_step(current.workspace(), "db.sync", "db.sync", {"from_url": from_url, "to_url": to_url,
                                                                  "overwrite": yes}, say=say)
    emit(result, [f"target dumped to {result.target_dump}", f"copied {result.source} -> {result.target}",
                  *[f"  {t}: {n} rows" for t, n in sorted(result.tables.items())]])


def register(root: typer.Typer) -> None:
    """Add `mobius db ...` to the root app."""
    root.add_typer(app, name="db")
