"""Every backup of a workspace, of either kind, as one list: what readiness, preflight and `latest` look at.

A workspace made by an earlier release holds full archives; a newer one holds snapshots (the
default of `backup create`), often both. A snapshot is recorded only after every pack it needs
was checked from the device, so each one counts as verified from its creation; an archive counts
as verified when its own log says so (the last verify passed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any

from mobius.backup import catalog
from mobius.backup.repository import snapshot_created
from mobius.config import Workspace

ARCHIVE = "archive"
SNAPSHOT = "snapshot"


@dataclass(frozen=True)
class BackupPoint:
    """One backup: an archive (`name` is its path) or a snapshot (`name` is its id)."""

    kind: str
    name: str
    created: dt.datetime
    verified: bool
    files: int | None = None

    @property
    def label(self) -> str:
        """How a person names it: the archive's file name, or `snapshot <id>`."""
        return self.name.rsplit("/", 1)[-1] if self.kind == ARCHIVE else f"snapshot {self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "created": self.created.isoformat(timespec="seconds"),
                "verified": self.verified, "files": self.files}


def backup_points(ws: Workspace, prefix: str | None = None) -> list[BackupPoint]:
    """Archives in the backups folder (only `prefix`'s when given) and every readable snapshot, newest first.

    Raises OSError when the backups folder cannot be listed (a readiness check reports it).
    """
    points = [BackupPoint(ARCHIVE, str(info.path), info.created, info.state == "verified", info.files)
              for info in catalog.list_backups(ws.backups, prefix)]
    from mobius.backup.api import snapshot_repository  # (api uses this module)

    with contextlib.suppress(ValueError):  # a snapshot with an unreadable stamp is left to `verify` to report
        points += [BackupPoint(SNAPSHOT, header.id, snapshot_created(header), True, header.files)
                   for header in snapshot_repository(ws).headers()]
    return sorted(points, key=lambda p: (p.created, p.kind == SNAPSHOT), reverse=True)  # a tie: the snapshot


def newest_verified(ws: Workspace, prefix: str | None = None) -> BackupPoint | None:
    """The newest backup of either kind that passed its check, or None."""
    return next((p for p in backup_points(ws, prefix) if p.verified), None)
