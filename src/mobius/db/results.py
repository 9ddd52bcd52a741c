"""Typed results of `mobius.db.api`: attributes for callers, `to_dict()` with the JSON keys `--json` prints.

`to_dict()` is shallow (nested dumps, outcomes and paths stay objects); `mobius.results.to_jsonable`
turns them into JSON, so `emit(result, lines)` and the operation record serialize them the one way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobius.db.dump import Dump
from mobius.db.runner import MigrationOutcome


class _Shallow:
    """`to_dict()` as the dataclass fields in order, values untouched (the serializer recurses)."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


@dataclass
class DatabaseStatus(_Shallow):
    """`mobius db status`: applied, unfinished and pending migrations, the current version and drift."""

    database: str
    engine: str
    current_version: int
    applied: list[dict[str, Any]]
    unfinished: list[dict[str, Any]]
    pending: list[dict[str, Any]]
    drift: list[dict[str, Any]]


@dataclass
class RehearsalReport(_Shallow):
    """The plan applied to a throwaway copy: whether it passed, how long it took, each migration's outcome."""

    ok: bool
    seconds: float
    migrations: list[MigrationOutcome]


@dataclass
class MigrateResult:
    """`mobius db migrate`: the run id, the dump, the rehearsal, what was applied (or, dry, the plan)."""

    database: str
    engine: str
    run_id: str
    dry_run: bool
    dump: Dump | None = None
    rehearsal: RehearsalReport | None = None
    applied: list[MigrationOutcome] = field(default_factory=list)
    plan: list[dict[str, Any]] | None = None  # dry run only: each migration's SQL
    planned: list[str] | None = None  # real run only: the labels about to be applied
    current_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"database": self.database, "engine": self.engine, "run_id": self.run_id,
                               "dry_run": self.dry_run, "dump": self.dump, "rehearsal": self.rehearsal,
                               "applied": self.applied}
        if self.dry_run:
            out["plan"] = self.plan
        elif self.planned is not None:
            out["planned"] = self.planned
        out["current_version"] = self.current_version
        return out


@dataclass
class DatabaseRollback(_Shallow):
    """`mobius db rollback`: the dump taken first, each migration undone, the version reached."""

    database: str
    run_id: str
    rolled_back: list[MigrationOutcome] = field(default_factory=list)
    dump: Dump | None = None
    current_version: int | None = None


@dataclass
class ValidateResult(_Shallow):
    """`mobius db validate`: how many applied files were checked; drift raises, so it is always empty here."""

    database: str
    checked: int
    drift: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ChecksumAcceptance(_Shallow):
    """`mobius db accept-checksum`: the recorded checksum before and after, and why."""

    version: int
    old_checksum: str
    new_checksum: str
    changed: bool
    reason: str


@dataclass
class DatabaseRestore(_Shallow):
    """`mobius db restore`: the dump restored and where the replaced database was dumped first."""

    database: str
    restored: Path
    safety_dump: Path | None


@dataclass
class SyncResult:
    """`mobius db sync`: both dumps and the row count of every table (equal on both sides)."""

    source: str
    target: str
    target_dump: Path | None  # None: the caller holds its own checked dump of the target (env promote's snapshot)
    source_dump: Path
    tables: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.target, "target_dump": self.target_dump,
                "source_dump": self.source_dump, "tables": self.tables}
