"""What deploy, env promote and env rollback restore from when they fail or are undone: a restore point.

A restore point is a snapshot in the environment's backup repository (its backups folder or
MOBIUS_BACKUP_DIR=s3://...), or a full archive: records written by earlier releases name archives, and
`mobius rollback --backup ARCHIVE` takes one. A snapshot stores only what changed since the last one
and does not read unchanged files, so a promote of a library with 10% changed backs up 10%, where a
full archive re-read and re-compressed the whole library every time (issue #20).

The newest restore point of each command in each environment is named in
`<backups>/retention-protected.<command>.<env>.txt`, which archive retention and snapshot prune read:
neither ever removes what a rollback from the record may still need.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobius.config import Workspace, is_url
from mobius.errors import InputError, MobiusError
from mobius.safety.atomic import atomic_write_text

SNAPSHOT = "snapshot"
ARCHIVE = "archive"
PROTECTED_PREFIX = "retention-protected"  # read by backup.catalog.protected_names


@dataclass(frozen=True)
class RestorePoint:
    """A snapshot id, or an archive's absolute path (what the undo handle and the release record hold)."""

    name: str
    kind: str

    @classmethod
    def parse(cls, value: str | Path) -> RestorePoint:
        """The point a recorded value names: an archive is always recorded as an absolute path, a snapshot as
        its id (no `/`), so a record written by any release reads back as what it was."""
        text = str(value)
        return cls(text, ARCHIVE if "/" in text else SNAPSHOT)

    @property
    def label(self) -> str:
        return Path(self.name).name if self.kind == ARCHIVE else f"snapshot {self.name}"

    @property
    def protected_name(self) -> str:
        """How retention files name it: an archive by its file name, a snapshot by its id."""
        return Path(self.name).name if self.kind == ARCHIVE else self.name

    def __str__(self) -> str:
        return self.name


@dataclass
class TakenPoint:
    """A restore point just written and checked: what it is, the line to print, whether it holds the database."""

    point: RestorePoint
    evidence: str
    has_database: bool


def dump_ahead(ws: Workspace, folder: Path) -> Path | None:
    """The checked database dump a restore point will hold, taken into `folder` before `take` (env promote takes
    it while it plans and reads the state to restore to); None when the database has no tables."""
    from mobius.db import database_is_empty, dump_database

    return None if database_is_empty(ws) else dump_database(ws, folder / "mobius.dump")


def take(ws: Workspace, progress: Any = None, *, database: bool = True,
         database_dump: Path | None = None) -> TakenPoint:
    """A snapshot of the environment (library, settings file, checked database dump), every new pack read back
    from the device before the snapshot is written (backup.create_snapshot). `database_dump`: the dump taken
    by `dump_ahead` (`database=False` when it found no tables); default, one taken here."""
    from mobius.backup import DATABASE_MEMBER, create_snapshot

    if not is_url(ws.library):
        Path(ws.library).mkdir(parents=True, exist_ok=True)
    result = create_snapshot(ws, progress=progress, database=database, database_dump=database_dump)
    evidence = (f"snapshot {result.id} verified: {result.files} files, {result.new_files} new "
                f"({result.new_bytes} bytes stored), {result.reused_files} unchanged")
    return TakenPoint(RestorePoint(result.id, SNAPSHOT), evidence, DATABASE_MEMBER in result.extras)


def resolve(ws: Workspace, name: str) -> RestorePoint:
    """`--backup NAME`: `latest`, a snapshot id (or a unique prefix of one), or an archive (path or name)."""
    from mobius.backup import LATEST, find_snapshot, latest_backup, resolve_archive

    if name == LATEST:
        name = latest_backup(ws)
    snapshot = find_snapshot(ws, name)
    if snapshot is not None:
        return RestorePoint(snapshot, SNAPSHOT)
    path = resolve_archive(ws, name)
    if not path.is_file():
        raise InputError(f"backup {name} is neither an archive nor a snapshot of this environment",
                         hint="see `mobius backup list` and `mobius releases`")
    return RestorePoint(str(path), ARCHIVE)


def exists(ws: Workspace, point: RestorePoint) -> bool:
    """Is the point still there (retention or prune may have removed an old one)?"""
    return point in existing(ws, [point])


def existing(ws: Workspace, points: list[RestorePoint]) -> set[RestorePoint]:
    """Those of `points` still there; the repository is read once for all of them (`mobius releases` asks
    about every release, and an s3:// repository costs a round trip per read)."""
    found = {p for p in points if p.kind == ARCHIVE and Path(p.name).is_file()}
    if any(p.kind == SNAPSHOT for p in points):
        from mobius.backup.api import snapshot_repository

        try:
            ids = set(snapshot_repository(ws).snapshot_ids())
        except (OSError, MobiusError):  # an unreadable repository: its points cannot be used (a bug still raises)
            ids = set()
        found |= {p for p in points if p.kind == SNAPSHOT and p.name in ids}
    return found


def verify(ws: Workspace, point: RestorePoint, progress: Any = None) -> tuple[str, bool]:
    """Every byte the point needs read and checked; the evidence line and whether it holds a database dump."""
    from mobius.backup import DATABASE_MEMBER, verify_archive, verify_snapshot

    if point.kind == ARCHIVE:
        report = verify_archive(Path(point.name), progress).raise_if_failed()
        return (f"sha256 {report.sha256[:16]}... matches the sidecar; {report.files} files match the manifest",
                DATABASE_MEMBER in report.extras)
    from mobius.backup.api import snapshot_repository
    from mobius.backup.snapshot import read_header
    from mobius.errors import VerificationError

    check = verify_snapshot(ws, point.name, read_data=True, progress=progress)
    if not check.ok:
        raise VerificationError(f"snapshot {point.name} failed verification: {'; '.join(check.problems[:3])}",
                                hint="see `mobius backup verify --read-data`")
    repo = snapshot_repository(ws)
    header = read_header(repo.snapshot_file(point.name), repo.keys)
    return (f"snapshot {point.name}: {check.files} files, {check.bytes_read} bytes read back and checked",
            DATABASE_MEMBER in header.extras)


def restore_settings_file(ws: Workspace, point: RestorePoint, dest: Path) -> None:
    """The point's copy of the environment file, checked against its sha256, written to `dest`."""
    from mobius.backup import extract_member
    from mobius.backup.api import ENV_MEMBER, extract_snapshot_file

    if point.kind == ARCHIVE:
        extract_member(Path(point.name), ENV_MEMBER, dest)
    else:
        extract_snapshot_file(ws, point.name, ENV_MEMBER, dest)


def restore_library(ws: Workspace, point: RestorePoint, *, database: bool) -> Any:
    """The library (a folder: swapped in, the old content kept aside; s3://: the snapshot's objects written,
    the extra ones deleted, backup.object_restore) and, with `database`, the database, from the point."""
    from mobius.backup import restore_backup
    from mobius.backup.api import restore_snapshot, restore_snapshot_to_library

    if is_url(ws.library):
        if point.kind == ARCHIVE:
            raise InputError(f"cannot restore {point.label} into the library {ws.library}: a full archive restores "
                             "into a folder", hint=f"restore it with `mobius backup restore {Path(point.name).name} "
                             f"--to DIR`, then copy DIR to the bucket with `mobius media migrate --to {ws.library}`")
        return restore_snapshot_to_library(ws, point.name, database=database)
    if point.kind == ARCHIVE:
        return restore_backup(ws, Path(point.name), Path(ws.library), database=database)
    return restore_snapshot(ws, point.name, Path(ws.library), database=database)


def scratch(ws: Workspace) -> tempfile.TemporaryDirectory:
    ws.backups.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=".mobius-tmp-env-", dir=ws.backups)


def protect(ws: Workspace, point: RestorePoint, command: str | None = None) -> Path:
    """Name `point` as the newest restore point of `command` in this environment, where retention reads it
    (no `command`: the newest release's, in the file name releases have always used)."""
    ws.backups.mkdir(parents=True, exist_ok=True)
    owner = f"{command}." if command else ""
    path = ws.backups / f"{PROTECTED_PREFIX}.{owner}{ws.environment or 'workspace'}.txt"
    atomic_write_text(path, point.protected_name + "\n")
    return path
