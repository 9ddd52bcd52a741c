"""The backup capability as plain functions; `mobius backup ...` only calls these."""

from __future__ import annotations

import time
from pathlib import Path

from mobius.backup import catalog
from mobius.backup.archive import LOCK_NAME, BackupResult, write_archive
from mobius.backup.verify import verify_archive
from mobius.config import Workspace
from mobius.errors import InputError
from mobius.log import get_logger
from mobius.progress import Progress
from mobius.safety.lock import FileLock

LIBRARY_PREFIX = "mobius_library"
ENV_MEMBER = "workspace/.env"


def create_backup(ws: Workspace, *, keep: int | None = None, progress: Progress | None = None) -> BackupResult:
    """Archive the library and the workspace `.env`, verify the archive, then apply retention.

    Retention (keep the `keep` newest, default MOBIUS_BACKUP_KEEP, and always the newest verified)
    runs only after the new archive verified; a failed verify raises before anything is deleted.
    """
    keep = ws.settings.backup_keep if keep is None else keep
    if keep < 1:
        raise InputError(f"--keep must be at least 1, not {keep}", hint="the new backup always stays")
    extras = {ENV_MEMBER: ws.env_file} if ws.env_file.is_file() else {}
    result = write_archive(ws.library_path, ws.backups, LIBRARY_PREFIX, extra_files=extras, progress=progress)
    started = time.monotonic()
    verify_archive(result.path, progress)
    result.verified = True
    result.verify_seconds = time.monotonic() - started
    with FileLock(ws.backups / LOCK_NAME, timeout=600, what=f"a backup into {ws.backups}"):
        result.deleted = catalog.apply_retention(ws.backups, LIBRARY_PREFIX, keep)
    result.seconds += result.verify_seconds
    get_logger().info("backup.done", archive=str(result.path), verified=True, deleted=[str(p) for p in result.deleted])
    return result


def resolve_archive(ws: Workspace | None, name: str | Path) -> Path:
    """An archive given as a path, or as a name in the workspace's backups folder."""
    path = Path(name).expanduser()
    if path.is_file() or ws is None or path.is_absolute():
        return path.resolve()
    candidate = ws.backups / path
    return candidate.resolve() if candidate.is_file() else path.resolve()
