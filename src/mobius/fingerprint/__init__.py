"""Image fingerprints: a versioned dHash (ImageHash's definition), near-duplicate search at a million
images, and the "deploy dhash" runbook step as a verified, reversible hash-version migration.

See docs/fingerprint.md. The CLI imports this package only when a `library` command runs.
"""

from __future__ import annotations

from mobius.fingerprint.algorithm import EXACT, FAST, Algorithm, dhash, hash_batch, to_hex
from mobius.fingerprint.api import (
    compare_versions,
    find_duplicates,
    find_similar,
    hash_library,
    metrics,
    rehash,
    rollback,
    status,
)
from mobius.fingerprint.results import (
    DuplicateGroups,
    FingerprintMetrics,
    FingerprintStatus,
    HashReport,
    HashVersionSwitch,
    Rehash,
    SimilarImages,
    VersionComparison,
)

__all__ = ["EXACT", "FAST", "Algorithm", "DuplicateGroups", "FingerprintMetrics", "FingerprintStatus", "HashReport",
           "HashVersionSwitch", "Rehash", "SimilarImages", "VersionComparison", "compare_versions", "dhash",
           "find_duplicates", "find_similar", "hash_batch", "hash_library", "metrics", "rehash", "rollback", "status",
           "to_hex"]
