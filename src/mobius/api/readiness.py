"""Readiness: can this workspace serve and be changed safely right now? Library functions returning a Report.

The service's `/ready` runs them; the CLI and the orchestrator (a deploy's health gate, a migration's
preflight) can call the same functions. Each check returns `results.Check` and never raises for a
failed check; a failure to *check* (the database refuses the connection) is a failed check too,
with the reason in `detail`, because for readiness "cannot tell" means "not ready".

Checks, by name:
- `database`: the database answers `SELECT 1` (observed: round trip in ms).
- `schema`: the applied schema version equals the newest migration file (observed: applied version).
- `library`: the library folder exists and can be listed.
- `backups`: a file can be created and removed in the backups folder (observed: "probe file written and removed").
- `disk`: free space on the library's and the backups' filesystems is at least 10% (the runbook's line).
- `backup-age`: the newest *verified* backup is younger than MOBIUS_BACKUP_MAX_AGE_HOURS (0 = skipped).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path

from mobius.config import Workspace, is_url
from mobius.results import Check, Report, at_least, at_most, failed, passed, skipped

MIN_FREE_RATIO = 0.10


def _short(exc: BaseException) -> str:
    from mobius.config import mask_text
    from mobius.db.engine import first_line

    return mask_text(first_line(exc))[:300]


_expected_cache: dict[tuple, int] = {}
_engines: dict[str, object] = {}


def expected_version(ws: Workspace) -> int:
    """The newest migration file's version; re-parsed only when a migration folder's files change."""
    from mobius.db.migration import builtin_migration_dir, discover

    key = []
    for folder in (builtin_migration_dir(), ws.migrations):
        if folder.is_dir():
            key += [(str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.glob("*.sql"))]
    signature = tuple(key)
    if signature not in _expected_cache:
        _expected_cache.clear()
        _expected_cache[signature] = max((m.version for m in discover(ws)), default=0)
    return _expected_cache[signature]


def read_engine(target: object) -> object:
    """One engine per database for probes and reads. SQLite is opened read-only (a read takes no write
    lock, unlike the migration engine's BEGIN IMMEDIATE); PostgreSQL through the workspace's engine."""
    import sqlite3

    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from mobius.db.engine import make_engine

    key = target.url.render_as_string(hide_password=False)  # type: ignore[attr-defined]
    if key not in _engines:
        if target.is_sqlite:  # type: ignore[attr-defined]
            uri = f"file:{target.sqlite_path}?mode=ro"  # type: ignore[attr-defined]
            _engines[key] = create_engine("sqlite://", poolclass=NullPool,
                                          creator=lambda: sqlite3.connect(uri, uri=True, timeout=5,
                                                                          check_same_thread=False))
        else:
            _engines[key] = make_engine(target)  # type: ignore[arg-type]
    return _engines[key]


def database_checks(ws: Workspace) -> list[Check]:
    """`database` and `schema` over one connection (the schema check needs the database anyway)."""
    from sqlalchemy import text

    from mobius.db import history
    from mobius.db.engine import target_for

    source = "database"
    try:
        target = target_for(ws)
    except Exception as exc:  # noqa: BLE001 - a bad URL is a failed check here, not a crash
        return [failed("database", detail=_short(exc), source="MOBIUS_DATABASE_URL"),
                failed("schema", detail="database not reachable", source=source)]
    source = target.display
    if target.is_sqlite and not target.sqlite_path.exists():
        return [failed("database", detail=f"database file {target.sqlite_path} does not exist", source=source),
                failed("schema", detail="database not reachable", source=source)]
    try:
        expected = expected_version(ws)
    except Exception as exc:  # noqa: BLE001
        expected, why = None, _short(exc)
    engine = read_engine(target)
    try:
        started = time.perf_counter()
        with engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar()
            elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
            db_check = passed("database", elapsed_ms, unit="ms", source=source, detail="SELECT 1 answered")
            applied = history.applied(conn) if history.has_history(conn) else {}
            conn.rollback()
    except Exception as exc:  # noqa: BLE001 - any driver error means "not ready"
        return [failed("database", detail=_short(exc), source=source),
                failed("schema", detail="database not reachable", source=source)]
    current = max((v for v, row in applied.items() if row.status == "applied"), default=0)
    unfinished = sorted(v for v, row in applied.items() if row.status != "applied")
    if expected is None:
        schema = failed("schema", current, source="migrations", detail=f"cannot read the migration files: {why}")
    elif unfinished:
        schema = failed("schema", current, threshold=expected, source=source,
                        detail=f"unfinished migration(s) {unfinished}")
    elif current == expected:
        schema = passed("schema", current, threshold=expected, source=source, detail="at the newest migration")
    else:
        schema = failed("schema", current, threshold=expected, source=source,
                        detail=f"applied version {current}, newest migration file {expected}")
    return [db_check, schema]


def library_check(ws: Workspace) -> Check:
    """The library folder exists and can be listed (a local library; object storage is skipped)."""
    if is_url(ws.library):
        return skipped("library", f"library in object storage ({ws.library}); not checked here", source=ws.library)
    path = Path(ws.library)
    try:
        if not path.is_dir():
            return failed("library", detail=f"{path} is not a folder", source=str(path))
        with os.scandir(path) as entries:
            count = sum(1 for _ in zip(range(1000), entries, strict=False))
        if not os.access(path, os.R_OK | os.X_OK):
            return failed("library", detail=f"{path} is not readable", source=str(path))
    except OSError as exc:
        return failed("library", detail=f"{path}: {exc.strerror or exc}", source=str(path))
    return passed("library", count, unit="entries", source=str(path), detail="listed (first 1000 entries counted)")


def backups_check(ws: Workspace) -> Check:
    """A file can be created, synced and removed in the backups folder (the name is swept if we die)."""
    folder = ws.backups
    probe = folder / f".mobius-tmp-{os.getpid()}-ready-{time.monotonic_ns()}"
    try:
        if not folder.is_dir():
            return failed("backups", detail=f"{folder} is not a folder", source=str(folder))
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"ready")
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
    except OSError as exc:
        return failed("backups", detail=f"{folder} is not writable: {exc.strerror or exc}", source=str(folder))
    return passed("backups", "probe file written and removed", source=str(folder), detail=f"{probe.name}, 5 bytes")


def disk_check(ws: Workspace) -> Check:
    """Free space ratio (0-1) on the fullest of the library's and the backups' filesystems, >= 10%."""
    from mobius.safety.diskspace import disk_space

    paths = [ws.backups, ws.state] + ([] if is_url(ws.library) else [Path(ws.library)])
    worst: tuple[float, Path] | None = None
    for path in paths:
        try:
            free, total = disk_space(path)
        except OSError:
            continue
        ratio = free / total if total else 0.0
        if worst is None or ratio < worst[0]:
            worst = (min(ratio, 1.0), path)
    if worst is None:
        return failed("disk", detail="no filesystem could be measured", source=", ".join(map(str, paths)))
    return at_least("disk", round(worst[0], 4), MIN_FREE_RATIO, unit="ratio", source=str(worst[1]),
                    detail="free space on the fullest filesystem")


def backup_age_check(ws: Workspace, now: dt.datetime | None = None) -> Check:
    """The newest verified backup is younger than MOBIUS_BACKUP_MAX_AGE_HOURS (observed in hours)."""
    from mobius.backup.points import newest_verified
    from mobius.errors import MobiusError

    max_age_h = ws.settings.backup_max_age_hours
    if max_age_h <= 0:
        return skipped("backup-age", "MOBIUS_BACKUP_MAX_AGE_HOURS is 0", source=str(ws.backups))
    try:
        newest = newest_verified(ws)  # archives and snapshots
    except (OSError, MobiusError) as exc:
        return failed("backup-age", detail=f"cannot list {ws.backups}: {getattr(exc, 'strerror', None) or exc}",
                      source=str(ws.backups))
    if newest is None:
        return failed("backup-age", detail="no verified backup", threshold=f"<= {max_age_h}", unit="h",
                      source=str(ws.backups))
    age_h = ((now or dt.datetime.now(dt.UTC)) - newest.created).total_seconds() / 3600
    return at_most("backup-age", round(age_h, 3), max_age_h, unit="h", source=newest.name,
                   detail=f"newest verified backup {newest.label}")


CHECKS: dict[str, Callable[[Workspace], list[Check]]] = {
    "database": lambda ws: database_checks(ws)[:1],
    "schema": lambda ws: database_checks(ws)[1:],
    "library": lambda ws: [library_check(ws)],
    "backups": lambda ws: [backups_check(ws)],
    "disk": lambda ws: [disk_check(ws)],
    "backup-age": lambda ws: [backup_age_check(ws)],
}


def readiness(ws: Workspace, only: str | None = None) -> Report:
    """Every readiness check (or the one named `only`, see CHECKS); never raises for a failed check."""
    if only is not None:
        return Report(f"ready/{only}", list(CHECKS[only](ws)))
    report = Report("ready")
    report.extend(database_checks(ws))
    for name in ("library", "backups", "disk", "backup-age"):
        report.extend(CHECKS[name](ws))
    return report
