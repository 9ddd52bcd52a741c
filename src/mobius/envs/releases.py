"""Releases: each deploy is one recorded operation (type env.deploy) with the backup taken before it.

`rollback` without arguments returns to the state before the newest release (its backup); that
backup is listed in `<backups>/retention-protected.<env>.txt`, which backup retention never deletes.
`rollback --to R` needs the backup the deploy after R took; retention may remove it, so each release
says whether it is still restorable, and a rollback to one that is not is refused before anything changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mobius.config import Workspace
from mobius.envs import restore_point
from mobius.envs.restore_point import RestorePoint
from mobius.errors import InputError
from mobius.records import RecordStore

DEPLOY = "env.deploy"
ROLLBACK = "env.rollback"


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
    backed_up: bool = True  # False: deployed with --no-backup
    restorable: bool | None = None  # can `rollback --to` this release still work? None: not a question for it
    backup_exists: bool = False  # its restore point is still in the repository (retention or prune may remove it)

    def line(self) -> str:
        backup = "-" if not self.backup else (RestorePoint.parse(self.backup).label
                                              + ("" if self.backup_exists else " (removed)"))
        tail = "  not restorable (the next release's backup was removed)" if self.restorable is False else ""
        return (f"{self.id}  {self.kind:<8} {self.status:<10} {self.started}  version {self.version}  "
                f"schema {self.schema_version}  backup {backup}{tail}")


def list_releases(ws: Workspace, *, limit: int = 200) -> list[Release]:
    """Deploys and rollbacks of this environment, newest first."""
    store = RecordStore.of(ws)
    try:
        ops = [op for kind in (DEPLOY, ROLLBACK) for op in store.list(type=kind, limit=limit)
               if op.params.get("env") == ws.environment]
    finally:
        store.close()
    ops.sort(key=lambda op: (op.started, op.id), reverse=True)
    backups = {op.id: (op.result or {}).get("backup") for op in ops}
    present = restore_point.existing(ws, [RestorePoint.parse(b) for b in backups.values() if b])
    found = []
    for op in ops:
        result, backup = op.result or {}, backups[op.id]
        found.append(Release(op.id, op.type.split(".")[-1], op.status, op.started, backup, result.get("version"),
                             result.get("schema_version"), result.get("changed"), bool(op.params.get("backup", True)),
                             backup_exists=bool(backup) and RestorePoint.parse(backup) in present))
    return _with_restorable(found)


def _with_restorable(found: list[Release]) -> list[Release]:
    """Mark each deploy but the newest: `rollback --to` it needs the backup of the deploy after it."""
    from dataclasses import replace

    done = [r for r in found if _changed_something(r)]
    after = {older.id: newer for newer, older in zip(done, done[1:], strict=False)}
    return [replace(r, restorable=after[r.id].backup_exists) if r.id in after else r for r in found]


def _changed_something(release: Release) -> bool:
    return release.kind == "deploy" and (release.status == "completed" or bool(release.backup))


def deploys(ws: Workspace) -> list[Release]:
    """Deploys that changed something: completed ones, and failed ones after their backup (a rollback's source)."""
    return [r for r in list_releases(ws) if _changed_something(r)]


def _refuse_stopped_before_backup(ws: Workspace) -> None:
    """The newest deploy stopped (killed, failed) before its backup: it changed nothing, so a plain rollback
    would go back past it, to the release before, and lose what changed since. Say so instead."""
    newest = next((r for r in list_releases(ws) if r.kind == "deploy"), None)
    if newest is None or newest.backup or newest.status == "completed":
        return
    if not newest.backed_up:
        raise InputError(f"the newest release {newest.id} ran with --no-backup and stopped ({newest.status}): "
                         "there is no backup of the state before it", hint="pass --backup ARCHIVE")
    raise InputError(f"the newest release {newest.id} stopped before its backup ({newest.status}): it changed "
                     f"nothing, so there is nothing to roll back",
                     hint="to return to an older state pass --to RELEASE or --backup ARCHIVE (see `mobius releases`)")


def backup_for_rollback(ws: Workspace, to: str | None = None) -> RestorePoint:
    """The restore point a rollback returns to: before the newest deploy, or the state right after release `to`."""
    if to is None:
        _refuse_stopped_before_backup(ws)
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
    if to is not None and not chosen.backup_exists:
        raise InputError(f"release {to} is no longer restorable: the backup {RestorePoint.parse(chosen.backup).label} "
                         "that the "
                         f"next release {chosen.id} took was removed (backup retention, MOBIUS_BACKUP_KEEP)",
                         hint="nothing was changed; see `mobius releases` for the restorable ones, or pass "
                              "--backup ARCHIVE")
    return RestorePoint.parse(chosen.backup)


def protect_rollback_backup(ws: Workspace) -> RestorePoint | None:
    """Name the restore point the newest rollback needs where backup retention and prune read it."""
    done = [r for r in deploys(ws) if r.backup]
    if not done:
        return None
    point = RestorePoint.parse(done[0].backup or "")
    restore_point.protect(ws, point)
    return point
