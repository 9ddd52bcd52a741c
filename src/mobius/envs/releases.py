"""Releases: each deploy is one recorded operation (type env.deploy) with the backup taken before it.

`rollback` without arguments returns to the state before the newest release (its backup); that
backup is listed in `<backups>/retention-protected.<env>.txt`, which backup retention never deletes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobius.config import Workspace
from mobius.errors import InputError
from mobius.records import RecordStore
from mobius.safety.atomic import atomic_write_text

DEPLOY = "env.deploy"
ROLLBACK = "env.rollback"
PROTECTED_PREFIX = "retention-protected"  # <backups>/retention-protected.<env>.txt, read by backup retention


@dataclass(frozen=True)
class Release:
    id: str
    kind: str  # deploy or rollback
    status: str
    started: str
    backup: str | None
    version: str | None
    schema_version: Any
    changed: Any

    def line(self) -> str:
        return (f"{self.id}  {self.kind:<8} {self.status:<10} {self.started}  version {self.version}  "
                f"schema {self.schema_version}  backup {Path(self.backup).name if self.backup else '-'}")


def list_releases(ws: Workspace, *, limit: int = 200) -> list[Release]:
    """Deploys and rollbacks of this environment, newest first."""
    store = RecordStore.of(ws)
    try:
        ops = [op for kind in (DEPLOY, ROLLBACK) for op in store.list(type=kind, limit=limit)
               if op.params.get("env") == ws.environment]
    finally:
        store.close()
    ops.sort(key=lambda op: (op.started, op.id), reverse=True)
    return [Release(op.id, op.type.split(".")[-1], op.status, op.started, (op.result or {}).get("backup"),
                    (op.result or {}).get("version"), (op.result or {}).get("schema_version"),
                    (op.result or {}).get("changed")) for op in ops]


def deploys(ws: Workspace) -> list[Release]:
    """Deploys that changed something: completed ones, and failed ones after their backup (a rollback's source)."""
    return [r for r in list_releases(ws) if r.kind == "deploy" and (r.status == "completed" or r.backup)]


def backup_for_rollback(ws: Workspace, to: str | None = None) -> Path:
    """The archive a rollback restores: before the newest deploy, or the state right after release `to`."""
    done = deploys(ws)
    if not done:
        raise InputError(f"environment {ws.environment} has no release to roll back",
                         hint="pass --backup ARCHIVE, or see `mobius releases`")
    if to is None:
        chosen = done[0]
    else:
        ids = [r.id for r in done]
        if to not in ids:
            raise InputError(f"release {to} is not a deploy of {ws.environment}", hint="see `mobius releases`")
        index = ids.index(to)
        if index == 0:
            raise InputError(f"release {to} is the newest release; there is nothing to roll back to it from")
        chosen = done[index - 1]  # the deploy after `to` backed up the state `to` left
    if not chosen.backup:
        raise InputError(f"release {chosen.id} was deployed with --no-backup; it has no backup to return to",
                         hint="pass --backup ARCHIVE")
    return Path(chosen.backup)


def protect_rollback_backup(ws: Workspace) -> Path | None:
    """Write the name of the backup the newest rollback needs where backup retention reads it."""
    done = [r for r in deploys(ws) if r.backup]
    if not done:
        return None
    archive = Path(done[0].backup or "")
    folder = archive.parent
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{PROTECTED_PREFIX}.{ws.environment or 'workspace'}.txt", archive.name + "\n")
    return archive
