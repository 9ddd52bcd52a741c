"""Verified backups: one-pass archives with a manifest inside, sidecar checksums, safe restores.

Public API (other capabilities call these, never the modules' internals):
    create_backup(ws, *, keep=None, database=True, progress=None) -> BackupResult
    restore_backup(ws, archive, to, *, member_root, database=False, progress=None) -> ArchiveRestore
    write_archive(source, dest_dir, prefix, *, extra_files=None, progress=None) -> BackupResult
    verify_archive(path, progress=None) -> VerifyReport
    restore_archive(path, to, *, member_root="library", progress=None) -> ArchiveRestore
    extract_member(path, member, dest_file, progress=None) -> str
    test_restore(path, *, scratch=None, progress=None) -> TestRestoreReport
    verify_backup(ws, archive, *, deep=False, progress=None) -> VerifyReport       (recorded as backup.verify)
    test_restore_backup(ws, archive, *, scratch=None, progress=None) -> TestRestoreReport  (recorded)
    list_backups(folder, prefix=None) -> list[BackupInfo]
    apply_retention(folder, prefix, keep) -> list[Path]

The snapshot repository (in the same backups folder; see repository.py):
    create_snapshot(ws, *, database=True, force_read=False, progress=None, snapshot_id=None) -> SnapshotResult
    new_snapshot_id() -> str, has_snapshot(ws, snapshot_id) -> bool
    forget_snapshot(ws, snapshot_id) -> bool   (the snapshot file only; prune frees its content later)
    find_snapshot(ws, name) -> str | None
    verify_snapshot(ws, snapshot=None, *, read_data=False, progress=None) -> SnapshotCheck  (raises on damage)
    check_snapshot(ws, snapshot=None, *, read_data=False, progress=None) -> SnapshotCheck   (returns it: .ok,
        .report() a results.Report, .raise_if_failed(); recorded as backup.verify, failed when damaged)
    restore_snapshot(ws, snapshot, to, *, database=False, progress=None) -> ArchiveRestore
    extract_snapshot_file(ws, snapshot, member, dest_file) -> str
    restore_snapshot_to_objects(ws, snapshot, to, *, database=False, previous=None, progress=None) -> ObjectRestore
        (to: s3://bucket/prefix); plan_restore_to_objects(ws, snapshot, to) -> ObjectRestorePlan (its dry run);
        object_restore_target(ws, to) -> ObjectTarget; objects_below(ws, to) -> int; remove_objects_below(ws, to)
    test_restore_snapshot(ws, snapshot, *, scratch=None, progress=None) -> TestRestoreReport
    export_backup(ws, snapshot, out, *, progress=None) -> ExportResult
    prune_backups(ws, policy, *, dry_run=False, progress=None) -> PruneResult
    copy_backups(ws, to, snapshots=None, *, progress=None) -> CopyResult
    list_snapshots(folder) -> list[SnapshotHeader]
(each also on a repository at MOBIUS_BACKUP_DIR=s3://..., see remote.py)

Both kinds together (points.py): backup_points(ws, prefix=None), newest_verified(ws, prefix=None)
"""

from mobius.backup.api import (
    DATABASE_MEMBER,
    LATEST,
    LIBRARY_PREFIX,
    check_snapshot,
    copy_backups,
    create_backup,
    create_snapshot,
    export_backup,
    extract_snapshot_file,
    find_snapshot,
    forget_snapshot,
    has_snapshot,
    latest_backup,
    new_snapshot_id,
    object_restore_target,
    objects_below,
    plan_restore_to_objects,
    prune_backups,
    remove_objects_below,
    resolve_archive,
    restore_backup,
    restore_snapshot,
    restore_snapshot_to_objects,
    snapshot_repository,
    test_restore_backup,
    test_restore_snapshot,
    verify_backup,
    verify_snapshot,
)
from mobius.backup.archive import BackupResult, write_archive
from mobius.backup.catalog import BackupInfo, apply_retention, list_backups, log_path, sidecar_path
from mobius.backup.manifest import LIBRARY_ROOT, MANIFEST_NAME, SUMS_NAME
from mobius.backup.prune import RetentionPolicy
from mobius.backup.repository import list_snapshots
from mobius.backup.restore import ArchiveRestore, extract_member, restore_archive
from mobius.backup.trial_restore import TestRestoreReport, test_restore
from mobius.backup.verify import VerifyReport, verify_archive

__all__ = [
    "BackupInfo",
    "BackupResult",
    "DATABASE_MEMBER",
    "LATEST",
    "LIBRARY_PREFIX",
    "LIBRARY_ROOT",
    "MANIFEST_NAME",
    "ArchiveRestore",
    "RetentionPolicy",
    "SUMS_NAME",
    "TestRestoreReport",
    "VerifyReport",
    "apply_retention",
    "copy_backups",
    "create_backup",
    "create_snapshot",
    "export_backup",
    "extract_snapshot_file",
    "find_snapshot",
    "forget_snapshot",
    "has_snapshot",
    "latest_backup",
    "new_snapshot_id",
    "object_restore_target",
    "objects_below",
    "plan_restore_to_objects",
    "remove_objects_below",
    "restore_snapshot_to_objects",
    "list_snapshots",
    "prune_backups",
    "snapshot_repository",
    "restore_snapshot",
    "test_restore_snapshot",
    "verify_snapshot",
    "check_snapshot",
    "extract_member",
    "list_backups",
    "log_path",
    "resolve_archive",
    "restore_archive",
    "restore_backup",
    "sidecar_path",
    "test_restore",
    "test_restore_backup",
    "verify_archive",
    "verify_backup",
    "write_archive",
]
