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

Both kinds together (points.py): backup_points(ws, prefix=None), newest_verified(ws, prefix=None); the newest
library backup of either kind: latest_point(ws) -> BackupPoint (api.py)
"""

from __future__ import annotations

from importlib import import_module

# Where each public name lives. They load on first use (PEP 562) for start-up time: a promote's restore point
# needs api.create_snapshot and what it imports, not the archive, export, copy, prune or restore modules.
_HOMES = {
    **dict.fromkeys(["DATABASE_MEMBER", "LATEST", "LIBRARY_PREFIX", "check_snapshot", "copy_backups", "create_backup",
                     "create_snapshot", "export_backup", "extract_snapshot_file", "find_snapshot", "forget_snapshot",
                     "has_snapshot", "latest_backup", "latest_point", "new_snapshot_id", "object_restore_target",
                     "objects_below", "plan_restore_to_objects", "prune_backups", "remove_objects_below",
                     "resolve_archive", "restore_backup", "restore_snapshot", "restore_snapshot_to_objects",
                     "snapshot_repository", "test_restore_backup", "test_restore_snapshot", "verify_backup",
                     "verify_snapshot"], "api"),
    "BackupResult": "archive", "write_archive": "archive",
    **dict.fromkeys(["BackupInfo", "apply_retention", "list_backups", "log_path", "sidecar_path"], "catalog"),
    "LIBRARY_ROOT": "manifest", "MANIFEST_NAME": "manifest", "SUMS_NAME": "manifest",
    "RetentionPolicy": "prune",
    "ARCHIVE": "points", "SNAPSHOT": "points",
    "list_snapshots": "repository",
    "ArchiveRestore": "restore", "extract_member": "restore", "restore_archive": "restore",
    "TestRestoreReport": "trial_restore", "test_restore": "trial_restore",
    "VerifyReport": "verify", "verify_archive": "verify",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):  # noqa: ANN202 - the type of the name asked for
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mobius.backup' has no attribute {name!r}")
    value = getattr(import_module(f"mobius.backup.{home}"), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value
