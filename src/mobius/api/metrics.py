"""Prometheus metrics: HTTP traffic counted by every worker, and the workspace's state read at scrape time.

Naming follows Prometheus: a `mobius_` prefix, base units (seconds, bytes), `_total` on counters,
ratios 0-1, and only bounded labels (route *templates*, status classes, operation types, game slugs).

With more than one worker the HTTP counter and histogram live in prometheus-client's multiprocess
mode: `mobius serve` sets PROMETHEUS_MULTIPROC_DIR to a fresh, wiped folder before any worker starts,
each worker writes its own files and any worker's scrape sums them. Everything else (operations,
backups, golden results, schema version) is read from the workspace by the worker answering the scrape.

Other capabilities add gauges through `register_collector(name, fn)`: `fn(ws) -> {key: number}`
becomes `mobius_<name>_<key>` in `/metrics` and is served alone at `/metrics/<name>`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from mobius.config import Workspace
from mobius.results import to_jsonable

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STEP_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)  # a step: a blink to 4 h
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_log = logging.getLogger("mobius.api.metrics")
disable_created_metrics()  # no `_created` series: they double the output and no dashboard reads them

HTTP_REQUESTS = Counter("mobius_http_requests", "HTTP requests answered, by route template and status class.",
                        ["method", "route", "status_class"])
HTTP_LATENCY = Histogram("mobius_http_request_duration_seconds", "Time to answer an HTTP request.",
                         ["route"], buckets=LATENCY_BUCKETS)

MetricsFunction = Callable[[Workspace], Any]  # a dict or a result dataclass of numbers, read through to_jsonable
COLLECTORS: dict[str, MetricsFunction] = {}


def register_collector(name: str, fn: MetricsFunction) -> None:
    """Add a capability's gauges: `fn(ws)` returns {key: value}; exposed as `mobius_<name>_<key>`."""
    if not _NAME.match(name):
        raise ValueError(f"collector name {name!r} must match {_NAME.pattern}")
    COLLECTORS[name] = fn


def _discover_collectors() -> None:
    """Capabilities that publish a `metrics(ws)` function, registered when they are installed."""
    if "dhash" not in COLLECTORS:
        try:
            from mobius import fingerprint  # type: ignore[attr-defined]
        except ImportError:
            return
        fn = getattr(fingerprint, "metrics", None)
        if callable(fn):
            register_collector("dhash", fn)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in METHODS else "OTHER"
    HTTP_REQUESTS.labels(method, route, f"{status // 100}xx").inc()
    HTTP_LATENCY.labels(route).observe(seconds)


class WorkspaceCollector(Collector):
    """State read from the workspace at scrape time (not counted per process, so never summed twice)."""

    def __init__(self, ws: Workspace, only: str | None = None):
        self.ws = ws
        self.only = only

    def collect(self) -> Iterable[Any]:
        if self.only is not None:
            yield from self._capability(self.only)
            return
        for part in (self._operations, self._alerting, self._backups, self._repository, self._golden,
                     self._schema):
            try:
                yield from part()
            except Exception as exc:  # noqa: BLE001 - one unreadable source must not empty the scrape
                _log.warning("metrics source %s failed: %s", part.__name__, type(exc).__name__)
        for name in sorted(COLLECTORS):
            yield from self._capability(name)

    def _operations(self) -> Iterable[Any]:
        from mobius.api.reads import operation_stats

        stats = operation_stats(self.ws)
        count = CounterMetricFamily("mobius_operations", "Operations in the record store, by type and status.",
                                    labels=["type", "status"])
        duration = SummaryMetricFamily("mobius_operation_duration_seconds",
                                       "Duration of finished operations, by type and status.",
                                       labels=["type", "status"])
        for s in stats:
            count.add_metric([s.type, s.status], s.count)
            if s.duration_count:
                duration.add_metric([s.type, s.status], s.duration_count, s.duration_sum_s)
        yield count
        yield duration

    def _alerting(self) -> Iterable[Any]:
        """What alert rules watch (docs/notify.md): last success per type, step durations, monitor verdicts,
        running migrations, notification results, all read from the record store."""
        from mobius.records import ACTIVE, RecordStore
        from mobius.safety.stamps import parse_utc

        with RecordStore.of(self.ws, read_only=True) as store:
            last = store.last_finished("completed")
            durations = store.step_durations()
            verdicts = store.event_counts("monitor.")
            notified = store.event_counts("notify.")
            migrations = store.list(type="migrate.run", limit=20)
        success = GaugeMetricFamily("mobius_operation_last_success_timestamp_seconds",
                                    "When the newest completed operation of each type finished (Unix time).",
                                    labels=["type"])
        for type_, finished in sorted(last.items()):
            success.add_metric([type_], parse_utc(finished).timestamp())
        yield success
        yield _histogram("mobius_step_duration_seconds", "Duration of finished steps, by operation type and step.",
                         durations)
        monitor = CounterMetricFamily("mobius_monitor_verdicts", "Monitor verdicts recorded during operations, "
                                      "by monitor (error_rate, disk, duration) and verdict.",
                                      labels=["monitor", "verdict"])
        for kind, count in verdicts:
            parts = kind.split(".")
            if len(parts) == 3:
                monitor.add_metric(parts[1:], count)
        yield monitor
        yield GaugeMetricFamily("mobius_migration_running", "Migrations running now (their process is alive).",
                                value=sum(op.status in ACTIVE and not op.orphaned for op in migrations))
        sent = CounterMetricFamily("mobius_notifications", "Notification attempts, by result (delivered, failed).",
                                   labels=["result"])
        for kind, count in notified:
            sent.add_metric([kind.removeprefix("notify.")], count)
        yield sent

    def _repository(self) -> Iterable[Any]:
        from mobius.safety.tree import files

        size = sum(entry.size for entry in files(self.ws.backups)) if self.ws.backups.is_dir() else 0
        yield GaugeMetricFamily("mobius_backup_repository_size_bytes", "Bytes in the backups folder (archives, "
                                "snapshot packs, indexes), for a capacity alert.", value=size)

    def _backups(self) -> Iterable[Any]:
        from mobius.api.reads import backup_points

        backups = backup_points(self.ws)
        yield GaugeMetricFamily("mobius_backups", "Backups: archives in the backups folder and snapshots in the "
                                "repository.", value=len(backups))
        if not backups:
            return
        last = backups[0]
        now = dt.datetime.now(dt.UTC)
        yield GaugeMetricFamily("mobius_backup_last_age_seconds", "Age of the newest backup (either kind).",
                                value=(now - last.created).total_seconds())
        size = Path(last.name).stat().st_size if last.kind == "archive" and Path(last.name).is_file() else None
        if size is not None:  # a snapshot shares its packs with others: see the repository size instead
            yield GaugeMetricFamily("mobius_backup_last_size_bytes", "Size of the newest backup archive.", value=size)
        yield GaugeMetricFamily("mobius_backup_last_verified", "1 when the newest backup's last verification "
                                "passed (a snapshot is checked when written), 0 when it failed or was never verified.",
                                value=1.0 if last.verified else 0.0)
        verified = [b for b in backups if b.verified]
        if verified:
            yield GaugeMetricFamily("mobius_backup_last_verified_age_seconds", "Age of the newest verified backup.",
                                    value=(now - verified[0].created).total_seconds())

    def _golden(self) -> Iterable[Any]:
        from mobius.api.reads import golden_failures, golden_results

        passed = GaugeMetricFamily("mobius_golden_checks_passed", "Checks passed in the newest golden check.",
                                   labels=["game"])
        failed = GaugeMetricFamily("mobius_golden_checks_failed", "Checks failed in the newest golden check.",
                                   labels=["game"])
        for result in golden_results(self.ws):
            if result.checked is not None:
                passed.add_metric([result.game], result.passed)
                failed.add_metric([result.game], result.failed)
        yield passed
        yield failed
        failures = CounterMetricFamily("mobius_golden_check_failures", "Recorded golden checks that failed, by game.",
                                       labels=["game"])
        for game, count in sorted(golden_failures(self.ws).items()):
            failures.add_metric([game], count)
        yield failures

    def _schema(self) -> Iterable[Any]:
        from mobius.api.readiness import database_checks

        db, schema = database_checks(self.ws)
        yield GaugeMetricFamily("mobius_db_up", "1 when the database answered a query.", value=float(db.passed))
        if isinstance(schema.observed, int):
            yield GaugeMetricFamily("mobius_db_schema_version", "Applied schema version.", value=schema.observed)
        if isinstance(schema.threshold, int):
            yield GaugeMetricFamily("mobius_db_schema_expected_version", "Newest migration file's version.",
                                    value=schema.threshold)

    def _capability(self, name: str) -> Iterable[Any]:
        fn = COLLECTORS.get(name)
        if fn is None:
            return
        try:
            values = fn(self.ws)
        except Exception as exc:  # noqa: BLE001
            _log.warning("metrics collector %s failed: %s", name, type(exc).__name__)
            return
        for key, value in sorted(to_jsonable(values).items()):
            metric = f"mobius_{name}_{key}"
            if _NAME.match(metric) and isinstance(value, int | float):
                yield GaugeMetricFamily(metric, f"{name}: {key}", value=float(value))


def _histogram(name: str, doc: str, samples: list[tuple[str, str, float]]) -> HistogramMetricFamily:
    """A histogram over (type, step, seconds) samples, with cumulative STEP_BUCKETS per (type, step)."""
    family = HistogramMetricFamily(name, doc, labels=["type", "step"])
    grouped: dict[tuple[str, str], list[float]] = {}
    for type_, step, seconds in samples:
        grouped.setdefault((type_, step), []).append(float(seconds))
    for (type_, step), values in sorted(grouped.items()):
        buckets = [(str(le), sum(v <= le for v in values)) for le in STEP_BUCKETS] + [("+Inf", len(values))]
        family.add_metric([type_, step], buckets, sum(values))
    return family


def render(ws: Workspace, only: str | None = None) -> bytes:
    """The exposition text: HTTP series (summed over workers in multiprocess mode) and the workspace's state."""
    registry = CollectorRegistry()
    if only is None:
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(registry)
        else:
            registry.register(_HttpCollector())
    _discover_collectors()
    registry.register(WorkspaceCollector(ws, only))
    return generate_latest(registry)


class _HttpCollector(Collector):
    """The single-process HTTP series (the default registry also has process/GC series we do not repeat)."""

    def collect(self) -> Iterable[Any]:
        yield from HTTP_REQUESTS.collect()
        yield from HTTP_LATENCY.collect()


def prepare_multiprocess_dir(path: os.PathLike[str] | str) -> None:
    """Wipe and create the multiprocess folder: stale files from an earlier run would be summed in."""
    import shutil
    from pathlib import Path

    folder = Path(path)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, mode=0o700)


def worker_exited(pid: int) -> None:
    """Tell prometheus-client a worker is gone (its live gauges stop counting; counters stay)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
