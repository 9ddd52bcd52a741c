"""Media library: manifests, verification, and the verified, resumable, reversible migration.

Public functions (the CLI is a thin layer over these):
    build_manifest(folder, out, *, workers, progress, cache) -> ManifestResult
    verify_against(folder, manifest, *, trust_cache, workers, progress, cache) -> ManifestVerification
    migrate(ws, target, *, dry_run, backup, workers, min_free_ratio, confirm, report, progress) -> MigrationResult
    list_migrations(ws) -> list[MigrationRecord]
    rollback(ws, migration_id=None, *, workers, progress, report) -> MediaRollback
    finalize(ws, migration_id, *, confirm, workers, progress, report) -> FinalizeResult
    hash_cache(ws) -> HashCache
"""

from __future__ import annotations

from mobius.config import Workspace
from mobius.media.finalize import FinalizeResult, finalize, verify_destination
from mobius.media.hashcache import HashCache
from mobius.media.journal import MigrationRecord
from mobius.media.manifest import ManifestResult, ManifestVerification, build_manifest, verify_against
from mobius.media.migrate import MigrationResult, list_migrations, migrate
from mobius.media.rollback import MediaRollback, rollback


def hash_cache(ws: Workspace) -> HashCache:
    """The workspace's hash cache (state/media-hashes.sqlite) used by manifest and verify --trust-cache."""
    return HashCache(ws.state / "media-hashes.sqlite")


__all__ = [
    "FinalizeResult", "HashCache", "ManifestResult", "ManifestVerification", "MediaRollback", "MigrationRecord",
    "MigrationResult", "build_manifest", "finalize", "hash_cache", "list_migrations", "migrate", "rollback",
    "verify_against", "verify_destination",
]
