"""Verified backups: one-pass archives with a manifest inside, sidecar checksums, safe restores.

Public API (other capabilities call these, never the modules' internals):
    create_backup(ws, *, keep=None, database=True, progress=None) -> BackupResult
    restore_backup(ws, archive, to, *, member_root, database=False, progress=None) -> RestoreResult
    write_archive(source, dest_dir, prefix, *, extra_files=None, progress=None) -> BackupResult
    verify_archive(path, progress=None) -> VerifyReport
    restore_archive(path, to, *, member_root="library", progress=None) -> RestoreResult
    extract_member(path, member, dest_file, progress=None) -> str
    test_restore(path, *, scratch=None, progress=None) -> TestRestoreReport
    list_backups(folder, prefix=None) -> list[BackupInfo]
    apply_retention(folder, prefix, keep) -> list[Path]
"""

from mobius.backup.api import (
    DATABASE_MEMBER,
    LIBRARY_PREFIX,
    create_backup,
    resolve_archive,
    restore_backup,
)
from mobius.backup.archive import BackupResult, write_archive
from mobius.backup.catalog import BackupInfo, apply_retention, list_backups, log_path, sidecar_path
from mobius.backup.manifest import LIBRARY_ROOT, MANIFEST_NAME, SUMS_NAME
from mobius.backup.restore import RestoreResult, extract_member, restore_archive
from mobius.backup.trial_restore import TestRestoreReport, test_restore
from mobius.backup.verify import VerifyReport, verify_archive

__all__ = [
    "BackupInfo",
    "BackupResult",
    "DATABASE_MEMBER",
    "LIBRARY_PREFIX",
    "LIBRARY_ROOT",
    "MANIFEST_NAME",
    "RestoreResult",
    "SUMS_NAME",
    "TestRestoreReport",
    "VerifyReport",
    "apply_retention",
    "create_backup",
    "extract_member",
    "list_backups",
    "log_path",
    "resolve_archive",
    "restore_archive",
    "restore_backup",
    "sidecar_path",
    "test_restore",
    "verify_archive",
    "write_archive",
]
