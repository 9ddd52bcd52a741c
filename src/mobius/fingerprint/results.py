"""What the fingerprint operations return: one typed result per concept, serialized by
`mobius.results.to_jsonable` with the JSON keys `mobius library ... --json` and /metrics/dhash have
always had (a field whose key is a Python keyword names it in `metadata={"json": ...}`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class HashReport:
    """One `library hash` run over the library for one algorithm version."""

    algorithm: str
    active: str | None
    library: str
    images: int = 0
    hashed: int = 0
    unchanged: int = 0
    failed: int = 0
    removed: int = 0
    workers: int = 1
    seconds: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class GroupMember:
    """One image of a duplicate group: its distance to the group's first image and, when it has the same
    bytes as an earlier member, that member's path."""

    path: str
    hash: str
    distance: int
    copy_of: str | None


@dataclass(frozen=True)
class DuplicateGroup:
    """Images within the distance of each other (transitively); kind: identical, same-hash or near."""

    kind: str
    members: list[GroupMember]


@dataclass
class DuplicateGroups:
    """`library dupes`: every group of 2+ images, largest first."""

    algorithm: str
    distance: int
    variants: bool
    images: int
    groups: list[DuplicateGroup]
    duplicates: int
    search_seconds: float


@dataclass(frozen=True)
class SimilarImage:
    """A stored image within the distance of the query; `variant` is the query's flip/rotation that matched."""

    path: str
    hash: str
    distance: int
    variant: int


@dataclass
class SimilarImages:
    """`library similar`: the query image's hash and its matches, nearest first."""

    image: str
    hash: str
    algorithm: str
    distance: int
    matches: list[SimilarImage]


@dataclass
class VersionComparison:
    """How a change of hash version moves images: distance histogram and duplicate-group changes."""

    old: str
    new: str
    images: int
    distance: int
    identical: int
    bits_changed_mean: float
    histogram: dict[int, int]
    group_changes: int
    grouped_pairs_old: int
    grouped_pairs_new: int
    only_old: int
    only_new: int


@dataclass
class Rehash:
    """`library rehash --to`: the new version computed beside the old, compared, and switched or not."""

    old: str = field(metadata={"json": "from"})
    new: str = field(metadata={"json": "to"})
    hash: HashReport
    comparison: VersionComparison
    switched: bool = False


@dataclass(frozen=True)
class HashVersionSwitch:
    """`library rehash --rollback`: the active version switched back; nothing recomputed."""

    old: str = field(metadata={"json": "from"})
    new: str = field(metadata={"json": "to"})
    recomputed: int = 0


@dataclass(frozen=True)
class FingerprintMetrics:
    """/metrics/dhash: hash time percentiles and the extraction failure rate of one version."""

    algorithm: str | None
    active: str | None
    previous: str | None
    images: int = 0
    hashed: int = 0
    failed: int = 0
    failure_rate: float = 0.0
    hash_p50_ms: float | None = None
    hash_p95_ms: float | None = None


@dataclass(frozen=True)
class FingerprintStatus:
    """Stored versions with their counts, and which one is active."""

    active: str | None
    previous: str | None
    versions: dict[str, dict[str, Any]]
    current_exact: str
