"""An environment's state (library, database, settings file), its verified restore point, and putting it back.

Promote and rollback both end the same way when something fails: restore library + database +
settings from the restore point taken before (envs.restore_point: a snapshot, or an archive in records
of earlier releases), then prove it with a snapshot of the state taken before and after.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from mobius.config import Workspace, is_url, mask_text, settings_lock
from mobius.envs import restore_point
from mobius.envs.restore_point import RestorePoint, TakenPoint
from mobius.errors import MobiusError
from mobius.results import Report, failed, passed
from mobius.safety.atomic import atomic_write_bytes
from mobius.safety.tree import walk


def tree_digest(folder: Path, *, identity: bool = False) -> dict[str, Any]:
    """Files, bytes and a digest of every entry's path, kind, size, mode and link (no content read).

    With `identity`, each file's mtime and inode count too: what the media migration compares to
    tell a file it wrote from one edited since (a `touch` changes the digest). A restore gives back
    content, not inodes, so the snapshot a restore is proven against leaves them out.
    """
    digest = hashlib.sha256()
    files = size = 0
    if folder.is_dir():
        for entry in sorted(walk(folder), key=lambda e: e.path):
            stamp = f"\0{entry.mtime_ns}\0{entry.inode}" if identity and entry.kind == "file" else ""
            digest.update(f"{entry.path}\0{entry.kind}\0{entry.size}\0{entry.mode}\0{entry.link}{stamp}\n".encode(
                "utf-8", "surrogateescape"))
            files += entry.kind == "file"
            size += entry.size if entry.kind == "file" else 0
    return {"files": files, "bytes": size, "digest": digest.hexdigest()}


EVENT_LOG = "schema_migration_events"  # append-only by design: a restore adds its own event


def database_rows(ws: Workspace) -> dict[str, int]:
    """Row count of every table but the append-only migration event log (empty for a new database)."""
    from sqlalchemy import inspect

    from mobius.db.engine import connect, target_for

    target = target_for(ws)
    if target.is_sqlite and not target.sqlite_path.exists():
        return {}
    with connect(target) as conn, conn.begin():
        quote = conn.dialect.identifier_preparer.quote
        return {name: conn.exec_driver_sql(f"SELECT COUNT(*) FROM {quote(name)}").scalar() or 0
                for name in sorted(inspect(conn).get_table_names()) if name != EVENT_LOG}


def _catalog(conn: Any) -> dict[str, list[str]]:
    """Every table but the event log, by name (sorted), with its column names in order: one catalog query for all
    tables (get_multi_columns; a query per table was most of a small database's digest on PostgreSQL)."""
    from sqlalchemy import inspect

    inspector = inspect(conn)
    multi = inspector.get_multi_columns()
    return {name: [c["name"] for c in multi.get((None, name)) or inspector.get_columns(name)]
            for name in sorted(inspector.get_table_names()) if name != EVENT_LOG}


def _rows_digest_sql(table: str) -> str:
    """PostgreSQL: row count and md5 of the sorted md5s of every row's text, computed by the server."""
    return (f"SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), '')) "
            f"FROM (SELECT md5(t::text) AS h FROM {table} AS t) AS hashed")


def database_digest(ws: Workspace) -> str:
    """sha256 over every row of every table but the event log, in a stable order: equal databases, equal digest.

    On PostgreSQL each table is hashed by the server (md5 of each row's text, sorted, then md5 of them
    all), so no row crosses the wire: a promote's verify digests both databases, and fetching every row
    into Python was most of its time (issue #20). Both sides of a comparison are one engine (a promote
    refuses two), so the digests of one database are comparable with each other only within an engine.
    """
    from mobius.db.engine import connect, target_for

    digest = hashlib.sha256()
    target = target_for(ws)
    if target.is_sqlite and not target.sqlite_path.exists():
        return digest.hexdigest()
    with connect(target) as conn, conn.begin():
        quote = conn.dialect.identifier_preparer.quote
        for name, columns in _catalog(conn).items():
            digest.update(f"{name}\0{columns}\n".encode())
            if not target.is_sqlite:
                rows = conn.exec_driver_sql(_rows_digest_sql(quote(name))).one()
                digest.update(f"{rows[0]}\0{rows[1]}\n".encode())
                continue
            order = ", ".join(str(i + 1) for i in range(len(columns)))
            for row in conn.exec_driver_sql(f"SELECT * FROM {quote(name)} ORDER BY {order}"):
                digest.update(repr(tuple(row)).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def schema_version(ws: Workspace) -> int:
    from mobius.db import database_status

    return int(database_status(ws).current_version)


def library_digest(ws: Workspace) -> dict[str, Any]:
    """tree_digest of a library folder; of an s3:// library, its keys and sizes (backup.object_tree_digest)."""
    if not is_url(ws.library):
        return tree_digest(Path(ws.library))
    from mobius.backup.api import object_library
    from mobius.backup.object_restore import object_tree_digest

    return object_tree_digest(object_library(ws))


def library_files_digest(ws: Workspace) -> dict[str, Any]:
    """Files, bytes and a digest of every file's path and size, in the one form a folder and a bucket share:
    what a promote with a library in object storage compares (a bucket has no folders, modes or links)."""
    if is_url(ws.library):
        from mobius.backup.api import object_library
        from mobius.backup.object_restore import object_tree_digest

        return object_tree_digest(object_library(ws))
    digest = hashlib.sha256()
    files = sorted((e.path, e.size) for e in walk(Path(ws.library)) if e.kind == "file") \
        if Path(ws.library).is_dir() else []
    for path, size in files:
        digest.update(f"{path}\0{size}\n".encode("utf-8", "surrogateescape"))
    return {"files": len(files), "bytes": sum(size for _, size in files), "digest": digest.hexdigest()}


def snapshot(ws: Workspace) -> dict[str, Any]:
    """What `restore` must give back: settings bytes digest, library tree, tables and rows, schema version."""
    settings = ws.env_file.read_bytes() if ws.env_file.is_file() else b""
    return {"settings_sha256": hashlib.sha256(settings).hexdigest(), "library": library_digest(ws),
            "tables": database_rows(ws), "schema_version": schema_version(ws)}


def back_up_into(ws: Workspace, handle: dict[str, Any], key: str, progress: Any = None) -> TakenPoint:
    """A verified restore point and the state it must restore to, kept in a step's undo handle under `key`
    (and its result) before anything changes: a rollback after kill -9 needs nothing else."""
    before = snapshot(ws)
    taken = restore_point.take(ws, progress)
    handle.update({key: taken.point.name, "snapshot": before, "has_database": taken.has_database})
    handle["result"][key] = taken.point.name
    return taken


def restore_settings(ws: Workspace, point: RestorePoint) -> None:
    """Put the environment file back byte for byte from the point's settings member."""
    with restore_point.scratch(ws) as scratch:
        copy = Path(scratch) / "settings.env"
        restore_point.restore_settings_file(ws, point, copy)
        mode = ws.env_file.stat().st_mode & 0o777 if ws.env_file.exists() else 0o600
        with settings_lock(ws.env_file):
            atomic_write_bytes(ws.env_file, copy.read_bytes(), file_mode=mode)


def restore(ws: Workspace, point: RestorePoint | str | Path, *, expected: dict[str, Any] | None = None,
            has_database: bool = True) -> Report:
    """Restore library, database and settings from `point` (a snapshot id or an archive, as a record names
    it), then compare with the snapshot of the state taken before."""
    from mobius.config import load_workspace

    if not isinstance(point, RestorePoint):
        point = RestorePoint.parse(point)
    report = Report(f"restore of {ws.environment or 'the workspace'} from {point.label}")
    try:
        restore_settings(ws, point)
        report.add(passed("settings restored", str(ws.env_file)))
        ws = load_workspace(ws.root, env=ws.environment)
        result = restore_point.restore_library(ws, point, database=has_database)
        report.add(passed("library restored", f"{result.files} files", detail=str(result.to)))
        aside = result.rollback
        report.add(passed("database restored", mask_text(ws.database_url)) if has_database else
                   failed("database restored", None, detail="the backup holds no database dump (it was empty)"))
    except Exception as exc:  # noqa: BLE001 - any failure is a failed check of the report, never a lost one
        text = exc.one_line() if isinstance(exc, MobiusError) else f"{type(exc).__name__}: {exc}"
        report.add(failed("restore", None, detail=mask_text(text)))
        return report
    if expected is not None:
        now = snapshot(ws)
        for key in ("settings_sha256", "library", "tables", "schema_version"):
            same = now[key] == expected[key]
            report.add((passed if same else failed)(f"{key} as before", now[key] if not same else "identical",
                                                    threshold=None if same else expected[key]))
    if report.ok and aside is not None:
        shutil.rmtree(aside, ignore_errors=True)  # the failed run's content: the restore is proven
    return report
