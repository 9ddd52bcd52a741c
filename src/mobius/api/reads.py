"""What the service shows, read through the same library functions the CLI uses.

- operations: `records.RecordStore.list/get` (the record store in `state/operations.sqlite`);
- backups: `backup.catalog.list_backups` (the archives `mobius backup list` shows) and `backup.points`
  (archives and snapshots, newest first: what the metrics and the status page count);
- golden results: the newest `golden.check*` operation of each game in the record store. Its result is
  what `mobius golden check --json` prints (`GoldenVerdict.to_dict()`: game, passed, failed, checks) or,
  for `check-all`, `{"games": [...]}`; an `html` key, when the command wrote one, links the HTML report.
  Games that have goldens but no recorded check are listed as never checked.
- rollups: counts and durations grouped in SQL over the whole store (per day and status, per type and
  status), so they describe what ran, not how often anyone looked.

Everything goes through `RecordStore`, opened read-only (never created or written by a read; it also
reads on a full disk or a read-only mount): a workspace that has not run anything yet has no operations.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobius.config import Workspace
from mobius.records import EventRecord, Operation, RecordStore

GOLDEN_TYPES = ("golden.check", "golden.check-all")


def list_operations(ws: Workspace, *, type: str | None = None, status: str | None = None,
                    limit: int = 50, parent: str | None = None) -> list[Operation]:
    with RecordStore.of(ws, read_only=True) as store:
        return store.list(type=type, status=status, limit=limit, parent=parent)


def get_operation(ws: Workspace, op_id: str) -> Operation | None:
    with RecordStore.of(ws, read_only=True) as store:
        return store.get(op_id)


def operation_events(ws: Workspace, op_id: str) -> list[EventRecord]:
    with RecordStore.of(ws, read_only=True) as store:
        return store.events(op_id)


def list_backups(ws: Workspace) -> list[Any]:
    from mobius.backup.catalog import list_backups as catalog_list

    return catalog_list(ws.backups)


def backup_points(ws: Workspace) -> list[Any]:
    """Archives and snapshots, newest first (`backup.points`: what readiness and preflight count)."""
    from mobius.backup.points import backup_points as points

    return points(ws)


@dataclass
class OperationStats:
    """Per (type, status): how many, and their summed duration in seconds (finished ones)."""

    type: str
    status: str
    count: int
    duration_count: int
    duration_sum_s: float


def operation_stats(ws: Workspace) -> list[OperationStats]:
    with RecordStore.of(ws, read_only=True) as store:
        rows = store.counts()
    return [OperationStats(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]


def daily_rollup(ws: Workspace, days: int = 14) -> dict[str, dict[str, int]]:
    """{day: {status: count}} for the last `days` UTC days that had operations, newest first."""
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days - 1)).strftime("%Y-%m-%d")
    out: dict[str, dict[str, int]] = {}
    with RecordStore.of(ws, read_only=True) as store:
        for day, status, count in store.daily_counts(since):
            out.setdefault(day, {})[status] = count
    return out


@dataclass
class GoldenResult:
    """The newest recorded golden check of one game."""

    game: str
    checked: str | None = None
    operation: str | None = None
    passed: int = 0
    failed: int = 0
    failed_checks: list[str] = field(default_factory=list)
    html: str | None = None

    @property
    def verdict(self) -> str:
        if self.checked is None:
            return "never checked"
        return "pass" if self.failed == 0 else "fail"

    def to_dict(self) -> dict[str, Any]:
        return {"game": self.game, "verdict": self.verdict, "checked": self.checked, "operation": self.operation,
                "passed": self.passed, "failed": self.failed, "failed_checks": self.failed_checks,
                "html_report": bool(self.html)}


def _game_entries(result: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(result.get("games"), list):
        return [g for g in result["games"] if isinstance(g, dict) and g.get("game")]
    return [result] if result.get("game") else []


def golden_results(ws: Workspace, *, scan: int = 500) -> list[GoldenResult]:
    """The newest recorded golden check per game (plus games with goldens never checked), by game name."""
    found: dict[str, GoldenResult] = {}
    for op in list_operations(ws, type="golden", limit=scan):
        if op.type not in GOLDEN_TYPES or op.status not in ("completed", "failed"):
            continue
        html = op.result.get("html") if isinstance(op.result.get("html"), str) else None
        for entry in _game_entries(op.result):
            game = str(entry["game"])
            if game in found:
                continue
            checks = [c for c in entry.get("checks", []) if isinstance(c, dict)]
            failed_names = [str(n) for n in entry.get("failed", [])]
            n_failed = len(failed_names) if failed_names or checks else (0 if entry.get("passed") else 1)
            found[game] = GoldenResult(game, op.finished or op.updated, op.id, max(len(checks) - n_failed, 0),
                                       n_failed, failed_names, html)
    try:
        from mobius.golden.baseline import games_with_goldens

        for game in games_with_goldens(ws):
            found.setdefault(game, GoldenResult(game))
    except Exception:  # noqa: BLE001, S110 - goldens folder unreadable: show what the records say
        pass
    return [found[g] for g in sorted(found)]


def golden_failures(ws: Workspace, *, scan: int = 500) -> dict[str, int]:
    """{game: how many of the newest `scan` recorded golden checks failed for it}."""
    counts: dict[str, int] = {}
    for op in list_operations(ws, type="golden", limit=scan):
        if op.type not in GOLDEN_TYPES or op.status not in ("completed", "failed"):
            continue
        for entry in _game_entries(op.result):
            checks = [c for c in entry.get("checks", []) if isinstance(c, dict)]
            if entry.get("failed") or (not checks and not entry.get("passed")):  # as golden_results counts
                counts[str(entry["game"])] = counts.get(str(entry["game"]), 0) + 1
    return counts


def golden_report_file(ws: Workspace, game: str) -> Path | None:
    """The HTML report of the newest check of `game`, when it exists inside the workspace."""
    for result in golden_results(ws):
        if result.game == game and result.html:
            path = ws.resolve(result.html).resolve()
            root = ws.root.resolve()
            if path.is_file() and path.is_relative_to(root):
                return path
    return None
