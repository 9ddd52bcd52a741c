"""The backup capability as plain functions; `mobius backup ...` only calls these."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from mobius.backup import catalog
from mobius.backup.archive import LOCK_NAME, BackupResult, write_archive
from mobius.backup.crypto import RepositoryKeys
from mobius.backup.manifest import LIBRARY_ROOT
from mobius.backup.object_library import ObjectLibrary
from mobius.backup.repository import Repository, SnapshotResult, write_snapshot_of
from mobius.backup.snapshot import SNAPSHOT_ID, SNAPSHOT_SUFFIX
from mobius.backup.verify import VerifyReport, verify_archive
from mobius.config import Workspace, is_url
from mobius.errors import EnvironmentProblem, InputError
from mobius.log import get_logger
from mobius.progress import Progress
from mobius.records import records_call
from mobius.safety.atomic import TEMP_PREFIX, fsync_dir
from mobius.safety.lock import FileLock
from mobius.safety.places import refuse_backups_in_library
from mobius.safety.stamps import new_id

if TYPE_CHECKING:  # the other commands' modules load inside the functions that use them (start-up of a snapshot)
    from mobius.backup.copy import CopyResult
    from mobius.backup.export import ExportResult
    from mobius.backup.object_restore import ObjectRestore, ObjectRestorePlan
    from mobius.backup.object_target import ObjectTarget
    from mobius.backup.points import BackupPoint
    from mobius.backup.prune import PruneResult, RetentionPolicy
    from mobius.backup.remote import RemoteRepository
    from mobius.backup.repository_check import SnapshotCheck
    from mobius.backup.restore import ArchiveRestore
    from mobius.backup.trial_restore import TestRestoreReport

LIBRARY_PREFIX = "mobius_library"
ENV_MEMBER = "workspace/.env"
DATABASE_MEMBER = "database/mobius.dump"
R = TypeVar("R")


@records_call("backup.create", ref=lambda result: result.path)
def create_backup(ws: Workspace, *, keep: int | None = None, database: bool = True,
                  progress: Progress | None = None) -> BackupResult:
    """Archive the library, the workspace `.env` and a checked database dump (verified as it is written),
    then apply retention.

    Retention (keep the `keep` newest, default MOBIUS_BACKUP_KEEP, and always the newest verified)
    runs only after the new archive verified; a failed verify raises before anything is deleted.
    """
    refuse_backups_in_library(ws.library, ws.backups)
    keep = ws.settings.backup_keep if keep is None else keep
    if keep < 1:
        raise InputError(f"--keep must be at least 1, not {keep}", hint="the new backup always stays")
    with _backup_extras(ws, database=database) as extras:
        result = write_archive(ws.library_path, ws.backups, LIBRARY_PREFIX, extra_files=extras, progress=progress)
    with FileLock(ws.backups / LOCK_NAME, timeout=600, what=f"a backup into {ws.backups}"):
        result.deleted = catalog.apply_retention(ws.backups, LIBRARY_PREFIX, keep)
    get_logger().info("backup.done", archive=str(result.path), verified=True, deleted=[str(p) for p in result.deleted])
    return result


def _database_dump(ws: Workspace, scratch: Path) -> Path | None:
    """A checked dump of the workspace database (SQLite backup API or pg_dump); None when it has no tables."""
    from mobius.db import database_is_empty, dump_database

    if database_is_empty(ws):
        get_logger().info("backup.database.skipped", reason="no database tables yet")
        return None
    return dump_database(ws, scratch / "mobius.dump")


@records_call("backup.restore")
def restore_backup(ws: Workspace, archive: Path, to: Path, *, member_root: str = LIBRARY_ROOT, database: bool = False,
                   progress: Progress | None = None) -> ArchiveRestore:
    """Restore the library tree into `to` and, with `database`, the database from the archive's dump.

    The dump is extracted (and checked) before anything is replaced, so an archive without one
    changes nothing; the current database is dumped before it is replaced.
    """
    from mobius.backup.restore import extract_member, restore_archive
    from mobius.db.api import check_restorable, database_restore_lock, restore_database

    check_restore_target(ws, Path(archive), Path(to))
    ws.backups.mkdir(parents=True, exist_ok=True)
    # Every lock and every check before the first change: a refusal leaves library and database as they were.
    with database_restore_lock(ws) if database else contextlib.nullcontext(), _scratch(ws) as scratch:
        dump = Path(scratch) / "mobius.dump"
        if database:
            extract_member(archive, DATABASE_MEMBER, dump, progress)
            check_restorable(ws, dump)
        result = restore_archive(archive, to, member_root=member_root, progress=progress)
        if database:
            restore_database(ws, dump, lock_held=True)
            get_logger().info("backup.database.restored", archive=str(archive), database=ws.database_url)
    return result


def check_restore_target(ws: Workspace, archive: Path, to: Path) -> None:
    """Refuse a target whose swap would move the workspace, the backups or the archive itself aside."""
    target = Path(os.path.normpath(Path(to).expanduser().absolute()))
    target = target.parent.resolve() / target.name if target.name else target.resolve()
    protected = {"the workspace": ws.root.resolve(), "the backups folder": ws.backups.resolve(),
                 "the archive": Path(archive).expanduser().resolve()}
    for what, path in protected.items():
        if target == path or target in path.parents:
            raise InputError(f"refusing to restore into {target}: it holds {what} ({path})",
                             hint="restore into the library folder or a new folder, e.g. --to uploads")


def _scratch(ws: Workspace) -> tempfile.TemporaryDirectory:
    """A scratch folder in backups/ named with our pid, so the next backup can remove it if we are killed."""
    return tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=ws.backups)


@contextlib.contextmanager
def _backup_extras(ws: Workspace, *, database: bool, dump: Path | None = None) -> Iterator[dict[str, Path]]:
    """What a backup carries beside the library (member name -> file): the settings file and, with
    `database`, a checked dump (`dump`, or one taken into a scratch folder that lives as long as the block)."""
    extras = {ENV_MEMBER: ws.env_file} if ws.env_file.is_file() else {}
    ws.backups.mkdir(parents=True, exist_ok=True)
    with _scratch(ws) as scratch:
        if not database:
            dump = None
        elif dump is None:
            dump = _database_dump(ws, Path(scratch))
        if dump is not None:
            extras[DATABASE_MEMBER] = dump
        yield extras


def resolve_archive(ws: Workspace | None, name: str | Path) -> Path:
    """An archive given as a path, or as a name in the workspace's backups folder."""
    path = Path(name).expanduser()
    if path.is_file() or ws is None or path.is_absolute():
        return path.resolve()
    candidate = ws.backups / path
    return candidate.resolve() if candidate.is_file() else path.resolve()


def _keys(ws: Workspace) -> RepositoryKeys:
    return RepositoryKeys.from_settings(ws.settings.backup_recipients, ws.settings.backup_identity_file, ws.root)


def snapshot_repository(ws: Workspace) -> Repository:
    """The workspace's snapshot repository (in its backups folder), with its encryption keys from the settings;
    for an s3:// repository, its local cache brought up to date (index and snapshot files, no packs)."""
    remote = _remote(ws)
    return Repository(ws.backups, _keys(ws)) if remote is None else remote.sync()


def _remote(ws: Workspace) -> RemoteRepository | None:
    """The repository at MOBIUS_BACKUP_DIR=s3://..., or None when it is a folder."""
    url = ws.backup_repository_url
    if url is None:
        return None
    from mobius.backup.remote import CACHE_FOLDER, RemoteRepository
    from mobius.backup.store import ObjectStore
    from mobius.backup.transfer import Transfers
    from mobius.media.destination import s3_storage_options  # the one reading of the S3 endpoint settings

    return RemoteRepository(ObjectStore(url, s3_storage_options(ws)), ws.state / CACHE_FOLDER, _keys(ws),
                            transfers=Transfers(ws))


@contextlib.contextmanager
def _working_repository(ws: Workspace, snapshots: list[str] | None = None, *, packs: bool = False,
                        progress: Progress | None = None) -> Iterator[Repository]:
    """The repository to run a command on: the folder; or, for s3://, the synced cache under a shared lock in the
    bucket (no prune meanwhile), with `packs` the packs `snapshots` (default all) need downloaded and checked."""
    remote = _remote(ws)
    if remote is None:
        yield snapshot_repository(ws)
        return
    with remote.lock(exclusive=False, what="waiting for a prune to finish"):
        cache = remote.sync()
        if not packs:
            yield cache
            return
        ids = [cache.require(name) for name in snapshots] if snapshots else cache.snapshot_ids()
        with remote.packs_fetched(cache, ids, progress):
            yield cache


@records_call("backup.snapshot", ref=lambda result: result.id)
def create_snapshot(ws: Workspace, *, database: bool = True, force_read: bool = False,
                    progress: Progress | None = None, snapshot_id: str | None = None,
                    database_dump: Path | None = None) -> SnapshotResult:
    """A snapshot of the library, the workspace `.env` and a checked database dump into the repository.

    Only content the repository lacks is stored; files unchanged since the parent snapshot (size,
    mtime, inode, ctime) are not read unless `force_read`. Every pack written is checked from the
    device before the snapshot, written last, references it. `snapshot_id`: the id to write it under,
    chosen (and recorded) by the caller before the work (`new_snapshot_id`); default a new one.
    `database_dump`: a checked dump of the workspace database (`db.dump_database`) the caller took ahead
    (env promote, while it plans), stored instead of a new one.
    """
    if snapshot_id is not None and not SNAPSHOT_ID.match(snapshot_id):
        raise InputError(f"{snapshot_id!r} is not a snapshot id", hint="make one with new_snapshot_id()")
    refuse_backups_in_library(ws.library, ws.backups)
    remote = _remote(ws)
    with _backup_extras(ws, database=database, dump=database_dump) as extras:
        source = object_library(ws) if is_url(ws.library) else ws.library_path
        if remote is None:
            return write_snapshot_of(snapshot_repository(ws), source, extra_files=extras, force_read=force_read,
                                     progress=progress, snapshot_id=snapshot_id)
        with remote.lock(exclusive=False, what="waiting for a prune to finish"):
            cache = remote.sync()
            try:
                # the cache held shared from the write to the upload: another command's sync or cleanup
                # (alone only) leaves this run's new packs, index and snapshot files where they are
                with cache.lock(exclusive=False, what="a cleanup of the cache"):
                    result = write_snapshot_of(cache, source, extra_files=extras, force_read=force_read,
                                               progress=progress, snapshot_id=snapshot_id)
                    remote.publish(cache, result.id, progress)  # packs, their index, the snapshot last
            finally:
                remote.drop_packs(cache)
    result.repository, result.path = remote.url, f"{remote.url}/snapshots/{result.path.name}"
    get_logger().info("backup.snapshot.published", id=result.id, repository=remote.url)
    return result


def new_snapshot_id() -> str:
    """An id for a snapshot not written yet (the form every snapshot id has: it sorts by its UTC stamp)."""
    return new_id()


def has_snapshot(ws: Workspace, snapshot_id: str) -> bool:
    """Whether the repository (a folder, or the bucket: one HEAD of the snapshot's object, not a sync of the
    cache) holds snapshot `snapshot_id`."""
    remote = _remote(ws)
    if remote is None:
        return snapshot_id in snapshot_repository(ws).snapshot_ids()
    key = f"snapshots/{snapshot_id}{SNAPSHOT_SUFFIX}"
    return bool(SNAPSHOT_ID.match(snapshot_id)) and remote.store.size(key) is not None


def forget_snapshot(ws: Workspace, snapshot_id: str) -> bool:
    """Forget one snapshot, as prune's first step does: its snapshot file only, under the repository's exclusive
    lock. The content it alone needed stays until the next prune (a snapshot written beside it may share
    it); nothing else is touched. A snapshot named in retention-protected*.txt (a release's restore point) is
    refused. Returns False when the repository does not hold it."""
    protected = catalog.protected_names(ws.backups) if ws.backups.is_dir() else set()
    if snapshot_id in protected:
        raise InputError(f"snapshot {snapshot_id} is a protected restore point; it is not forgotten",
                         hint="see retention-protected*.txt in the backups folder")
    remote = _remote(ws)
    if remote is not None:
        with remote.lock(exclusive=True, what=f"forgetting snapshot {snapshot_id}"):
            cache = remote.sync()
            if snapshot_id not in cache.snapshot_ids():
                return False
            remote.store.delete(f"snapshots/{snapshot_id}{SNAPSHOT_SUFFIX}")
            cache.snapshot_file(snapshot_id).unlink(missing_ok=True)
        return True
    repo = snapshot_repository(ws)
    with repo.lock(exclusive=True, what=f"forgetting snapshot {snapshot_id}"):
        path = repo.snapshot_file(snapshot_id)
        if not path.exists():
            return False
        path.unlink()
        fsync_dir(path.parent)
    get_logger().info("backup.snapshot.forgotten", id=snapshot_id, repository=repo.location)
    return True


def object_library(ws: Workspace, url: str | None = None) -> ObjectLibrary:
    """The library in object storage (s3://), or the s3:// location `url`, read through fsspec with the media
    capability's S3 settings."""
    from mobius.media.destination import s3_storage_options  # the one reading of the S3 endpoint settings

    url = ws.library if url is None else url
    if not url.startswith("s3://"):
        raise InputError(f"the library is at {url}: only local folders and s3:// can be backed up",
                         hint="point MOBIUS_LIBRARY_DIR at a folder or an s3://bucket/prefix")
    try:
        import fsspec
        import s3fs  # noqa: F401 - only to know whether the extra is installed
    except ImportError:
        raise EnvironmentProblem("backing up an s3:// library needs the s3fs package",
                                 hint="pip install s3fs") from None
    return ObjectLibrary(url, fsspec.filesystem("s3", **s3_storage_options(ws)))


LATEST = "latest"  # in place of an archive or snapshot name: the newest library backup of either kind


def latest_backup(ws: Workspace) -> str:
    """The newest library backup, as restic's `latest`: a snapshot id or an archive path, by creation time."""
    return latest_point(ws).name


def latest_point(ws: Workspace) -> BackupPoint:
    """The newest library backup with its kind: a caller that needs a snapshot id takes it from here, without
    a second look at the repository (on s3:// each look lists the bucket)."""
    from mobius.backup.points import backup_points

    newest = backup_points(ws, LIBRARY_PREFIX)
    if not newest:
        raise InputError(f"no backup in {ws.backups} yet, so there is no `latest`",
                         hint="create one with `mobius backup create`")
    return newest[0]


def find_snapshot(ws: Workspace | None, name: str | Path) -> str | None:
    """The snapshot id `name` names (an id or a unique prefix) when it is not an existing file; else None."""
    if ws is None or Path(name).expanduser().is_file():
        return None
    return snapshot_repository(ws).resolve(str(name))


@records_call("backup.verify", reads=True)
def verify_backup(ws: Workspace, archive: Path, *, deep: bool = False,
                  progress: Progress | None = None) -> VerifyReport:
    """`backup verify` of an archive as an operation: a failed verification is in `history` with its error, and
    notified, so this operation (unlike verify_archive, which returns its findings) raises VerificationError."""
    return verify_archive(archive, progress, deep=deep).raise_if_failed()


@records_call("backup.test-restore", reads=True)
def test_restore_backup(ws: Workspace, archive: Path, *, scratch: Path | None = None,
                        progress: Progress | None = None) -> TestRestoreReport:
    """`backup test-restore` of an archive as an operation (recorded, and notified when it fails), so it raises
    VerificationError (exit 2) for entries that differ, unlike test_restore, which returns them."""
    from mobius.backup.trial_restore import test_restore

    return test_restore(archive, scratch=scratch, progress=progress).raise_if_failed()


@records_call("backup.verify", reads=True)
def verify_snapshot(ws: Workspace, snapshot: str | None = None, *, read_data: bool = False,
                    progress: Progress | None = None) -> SnapshotCheck:
    """Structure and references of one snapshot (or all), or with `read_data` every byte they need."""
    from mobius.backup.repository_check import verify_snapshots

    with _working_repository(ws, [snapshot] if snapshot else None, packs=read_data, progress=progress) as repo:
        return verify_snapshots(repo, snapshot, read_data=read_data, progress=progress)


@records_call("backup.verify", reads=True, status=lambda check: "completed" if check.ok else "failed")
def check_snapshot(ws: Workspace, snapshot: str | None = None, *, read_data: bool = False,
                   progress: Progress | None = None) -> SnapshotCheck:
    """`verify_snapshot` that returns its findings instead of raising them (`.ok`, `.report()` a results.Report,
    `.raise_if_failed()` exit 2 as `backup verify`); a damaged snapshot is recorded as a failed operation."""
    from mobius.backup.repository_check import check_snapshots

    with _working_repository(ws, [snapshot] if snapshot else None, packs=read_data, progress=progress) as repo:
        return check_snapshots(repo, snapshot, read_data=read_data, progress=progress)


@records_call("backup.restore")
def restore_snapshot(ws: Workspace, snapshot: str, to: Path, *, database: bool = False,
                     progress: Progress | None = None) -> ArchiveRestore:
    """Restore a snapshot's library into `to` (and the database with `database`), as `restore_backup` does:
    the dump is extracted and checked before anything is replaced; the current database is dumped first."""
    with _working_repository(ws, [snapshot], packs=True, progress=progress) as repo:
        return _restore_snapshot(ws, repo, repo.require(snapshot), Path(to), database=database, progress=progress)


def _restore_snapshot(ws: Workspace, repo: Repository, snapshot_id: str, to: Path, *, database: bool,
                      progress: Progress | None) -> ArchiveRestore:
    from mobius.backup.snapshot_restore import restore_snapshot_tree
    from mobius.db.api import database_restore_lock

    check_restore_target(ws, repo.snapshot_file(snapshot_id), Path(to))
    with database_restore_lock(ws) if database else contextlib.nullcontext(), _scratch(ws) as scratch:
        return _library_then_database(ws, repo, snapshot_id, Path(scratch), database,
                                      lambda: restore_snapshot_tree(repo, snapshot_id, to, progress=progress))


def _library_then_database(ws: Workspace, repo: Repository, snapshot_id: str, scratch: Path, database: bool,
                           restore_library: Callable[[], R]) -> R:
    """Restore the library, and with `database` the database too, whose dump is extracted and checked before
    the library is touched (a dump that cannot be restored changes nothing). The caller holds the database's
    restore lock."""
    from mobius.backup.snapshot_restore import extract_snapshot_member
    from mobius.db.api import check_restorable, restore_database

    dump = scratch / "mobius.dump"
    if database:
        extract_snapshot_member(repo, snapshot_id, DATABASE_MEMBER, dump)
        check_restorable(ws, dump)
    result = restore_library()
    if database:
        restore_database(ws, dump, lock_held=True)
        get_logger().info("backup.database.restored", snapshot=snapshot_id, database=ws.database_url)
    return result


@records_call("backup.restore")
def restore_snapshot_to_library(ws: Workspace, snapshot: str, *, database: bool = False,
                                progress: Progress | None = None) -> ObjectRestore:
    """Restore a snapshot's library into the workspace's s3:// library (backup.object_restore: new objects
    written first, extra ones deleted after, the listing checked) and, with `database`, the database, whose
    dump is extracted and checked before anything is changed."""
    return _restore_into_objects(ws, snapshot, object_library(ws), database=database, progress=progress)


def object_restore_target(ws: Workspace, to: str) -> ObjectTarget:
    """`to` as a checked s3:// restore target (refused, exit 1, when it overlaps the repository or nests with the
    library; see backup.object_target)."""
    from mobius.backup.object_target import check_object_target

    return check_object_target(ws, to)


def objects_below(ws: Workspace, to: str) -> int:
    """How many objects the s3:// restore target `to` holds now."""
    from mobius.backup.object_restore import object_count
    from mobius.backup.object_target import check_object_target

    return object_count(object_library(ws, check_object_target(ws, to).url))


def remove_objects_below(ws: Workspace, to: str) -> int:
    """Delete every object below the s3:// restore target `to` (a restore's undo into a prefix that was empty)."""
    from mobius.backup.object_restore import delete_objects
    from mobius.backup.object_target import check_object_target

    return delete_objects(object_library(ws, check_object_target(ws, to).url))


def plan_restore_to_objects(ws: Workspace, snapshot: str, to: str, *,
                            progress: Progress | None = None) -> ObjectRestorePlan:
    """What a restore of `snapshot` into s3:// `to` would upload, leave alone and delete; changes nothing."""
    from mobius.backup.object_restore import plan_snapshot_objects
    from mobius.backup.object_target import check_object_target

    library = object_library(ws, check_object_target(ws, to).url)
    with _working_repository(ws, [snapshot], packs=True, progress=progress) as repo:
        return plan_snapshot_objects(repo, snapshot, library)


@records_call("backup.restore")
def restore_snapshot_to_objects(ws: Workspace, snapshot: str, to: str, *, database: bool = False,
                                previous: str | None = None, progress: Progress | None = None) -> ObjectRestore:
    """Restore a snapshot's library into `to` (s3://bucket/prefix, checked by backup.object_target): new and
    changed objects written first, extra ones deleted after, the listing checked; with `database` the database
    too, its dump checked before anything changes.

    Into the live library holding objects, its current content is first kept as snapshot `previous` (an id
    chosen by the caller and recorded before, as `new_snapshot_id` gives), the way a folder restore keeps
    `DIR.rollback.*`; a run again after a kill finds that snapshot made and does not take it twice.
    """
    from mobius.backup.object_restore import object_count
    from mobius.backup.object_target import check_object_target

    target = check_object_target(ws, to)
    library = object_library(ws, target.url)
    kept = None
    if previous is not None and target.is_library and object_count(library):
        if not has_snapshot(ws, previous):
            create_snapshot(ws, database=False, progress=progress, snapshot_id=previous)
        kept = previous
    result = _restore_into_objects(ws, snapshot, library, database=database, progress=progress)
    result.previous = kept
    if kept:
        result.notes.append(f"the library's previous content is snapshot {kept}")
    return result


def _restore_into_objects(ws: Workspace, snapshot: str, library: ObjectLibrary, *, database: bool,
                          progress: Progress | None) -> ObjectRestore:
    from mobius.backup.object_restore import restore_snapshot_objects
    from mobius.db.api import database_restore_lock

    ws.backups.mkdir(parents=True, exist_ok=True)
    with _working_repository(ws, [snapshot], packs=True, progress=progress) as repo, \
            database_restore_lock(ws) if database else contextlib.nullcontext(), _scratch(ws) as scratch:
        snapshot_id = repo.require(snapshot)
        return _library_then_database(ws, repo, snapshot_id, Path(scratch), database,
                                      lambda: restore_snapshot_objects(repo, snapshot_id, library, progress=progress))


def extract_snapshot_file(ws: Workspace, snapshot: str, member: str, dest_file: Path) -> str:
    """One file of a snapshot (`workspace/.env`, `database/mobius.dump`, `library/...`) written atomically to
    `dest_file`, checked against its sha256; returns the sha256."""
    from mobius.backup.snapshot_restore import extract_snapshot_member

    with _working_repository(ws, [snapshot], packs=True) as repo:
        return extract_snapshot_member(repo, snapshot, member, dest_file)


@records_call("backup.test-restore", reads=True)
def test_restore_snapshot(ws: Workspace, snapshot: str, *, scratch: Path | None = None,
                          progress: Progress | None = None) -> TestRestoreReport:
    """Restore a snapshot from its packs into a scratch folder, compare every entry with it, clean up; recorded,
    so it raises VerificationError (exit 2) for entries that differ."""
    from mobius.backup.snapshot_restore import test_restore_snapshot_tree

    with _working_repository(ws, [snapshot], packs=True, progress=progress) as repo:
        return test_restore_snapshot_tree(repo, snapshot, scratch=scratch, progress=progress).raise_if_failed()


def export_backup(ws: Workspace, snapshot: str, out: Path, *, progress: Progress | None = None) -> ExportResult:
    """A snapshot as one `.tar.zst` archive with its `.sha256` sidecar (checked before it is named)."""
    from mobius.backup.export import export_snapshot

    with _working_repository(ws, [snapshot], packs=True, progress=progress) as repo:
        return export_snapshot(repo, snapshot, out, progress=progress)


@records_call("backup.prune", skip=lambda args: args["dry_run"])  # a dry run is no operation
def prune_backups(ws: Workspace, policy: RetentionPolicy, *, dry_run: bool = False,
                  progress: Progress | None = None) -> PruneResult:
    """Forget the snapshots `policy` does not keep and remove the content no remaining snapshot needs."""
    from mobius.backup.prune import prune_repository

    remote = _remote(ws)
    if remote is not None:
        return remote.prune(policy, catalog.protected_names(ws.backups) if ws.backups.is_dir() else set(),
                            dry_run=dry_run)
    return prune_repository(snapshot_repository(ws), policy, dry_run=dry_run, progress=progress)


test_restore_snapshot.__test__ = False  # a library function, not a pytest test, when imported into a test module


@records_call("backup.copy")
def copy_backups(ws: Workspace, to: str, snapshots: list[str] | None = None, *,
                 progress: Progress | None = None) -> CopyResult:
    """Copy snapshots (default all) into another repository, a folder or s3://bucket/prefix; verified after."""
    from mobius.backup.copy import copy_snapshots
    from mobius.backup.remote import CACHE_FOLDER, RemoteRepository
    from mobius.backup.store import ObjectStore, open_store
    from mobius.backup.transfer import Transfers
    from mobius.media.destination import s3_storage_options  # the one reading of the S3 endpoint settings

    target = open_store(to if to.startswith("s3://") else str(ws.resolve(to)), s3_storage_options(ws))
    target_lock = (RemoteRepository(target, ws.state / CACHE_FOLDER).lock(exclusive=False, what="copy")
                   if isinstance(target, ObjectStore) else contextlib.nullcontext())
    with _working_repository(ws, snapshots, packs=True, progress=progress) as repo, target_lock:
        return copy_snapshots(repo, target, snapshots, progress=progress, transfers=Transfers(ws))
