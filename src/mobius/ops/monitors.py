"""Monitors that run beside the steps: disk, error rate (with a `for:` timer), duration.

A thread samples every `sample_every` seconds and records each verdict as an event (value,
threshold, time). It never interrupts a capability mid-call: it raises flags, and the
orchestrator acts on them at the next safe point (between steps). The error-rate timer's start
is an event in the record store, so a resumed run continues the same timer (Prometheus `for:`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from mobius import faults
from mobius.config import Workspace
from mobius.ops.plan import Monitors
from mobius.records import RecordStore
from mobius.safety.diskspace import disk_space
from mobius.safety.stamps import parse_utc, utc_iso, utc_now


@dataclass
class MonitorState:
    step: str | None = None
    failed: int = 0
    total: int = 0
    stop_reason: str | None = None
    rollback_reason: str | None = None
    pending_since: str | None = None
    alerting: bool = False
    escalated: bool = False
    samples: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error_rate(self) -> float | None:
        injected = faults.error_rate(self.step or "")
        if injected is not None:
            return injected
        return self.failed / self.total if self.total else None

    def feed(self, failed: int, total: int) -> None:
        with self.lock:
            self.failed, self.total = failed, total


class Monitor(threading.Thread):
    def __init__(self, ws: Workspace, store_path, op_id: str, thresholds: Monitors, *, estimate_s: float,
                 started_monotonic: float, state: MonitorState):
        super().__init__(name="mobius-monitor", daemon=True)
        self.ws, self.store_path, self.op_id, self.t = ws, store_path, op_id, thresholds
        self.estimate_s, self.started = estimate_s, started_monotonic
        self.state = state
        self._halt = threading.Event()

    def resume_timer(self, store: RecordStore) -> None:
        """A pending error-rate timer from before a kill continues (its start is in the record)."""
        since = None
        for event in store.events(self.op_id):
            if event.kind == "monitor.error_rate.pending":
                since = event.data.get("since")
            elif event.kind in ("monitor.error_rate.cleared", "monitor.error_rate.rollback"):
                since = None
        self.state.pending_since = since

    def run(self) -> None:
        store = _LazyStore(self.store_path)  # a command that ends before the first sample opens nothing
        try:
            while not self._halt.wait(self.t.sample_every):
                self.sample(store)  # type: ignore[arg-type]
        finally:
            store.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def sample(self, store: RecordStore) -> None:
        s = self.state
        s.samples += 1
        free, total = disk_space(self.ws.root)
        ratio = free / total if total else 1.0
        if ratio < self.t.disk_free_min and s.stop_reason is None:
            s.stop_reason = f"free disk {ratio:.1%} under the minimum {self.t.disk_free_min:.0%}"
            store.event(self.op_id, "monitor.disk.stop", {"value": round(ratio, 4), "threshold": self.t.disk_free_min,
                                                           "free_bytes": free, "step": s.step})
        rate = s.error_rate()
        if rate is not None:
            if rate > self.t.error_rate_alert and not s.alerting:
                s.alerting = True
                store.event(self.op_id, "monitor.error_rate.alert", {"value": rate,
                                                                      "threshold": self.t.error_rate_alert,
                                                                      "step": s.step})
            elif rate <= self.t.error_rate_alert:
                s.alerting = False
            limit = self.t.error_rate_rollback
            if rate > limit.above:
                if s.pending_since is None:
                    s.pending_since = utc_iso()
                    store.event(self.op_id, "monitor.error_rate.pending", {"value": rate, "threshold": limit.above,
                                                                            "for_s": limit.for_s,
                                                                            "since": s.pending_since,
                                                                            "step": s.step})
                held = (utc_now() - parse_utc(s.pending_since)).total_seconds()
                if held >= limit.for_s and s.rollback_reason is None:
                    s.rollback_reason = (f"error rate {rate:.0%} above {limit.above:.0%} for {held:.1f} s "
                                         f"(for: {limit.for_s:g} s)")
                    store.event(self.op_id, "monitor.error_rate.rollback", {"value": rate, "threshold": limit.above,
                                                                             "held_s": round(held, 2),
                                                                             "step": s.step})
            elif s.pending_since is not None:
                s.pending_since = None
                store.event(self.op_id, "monitor.error_rate.cleared", {"value": rate, "threshold": limit.above})
        elapsed = time.monotonic() - self.started
        if self.estimate_s and elapsed > self.t.duration_escalate * self.estimate_s and not s.escalated:
            s.escalated = True
            store.event(self.op_id, "monitor.duration.escalate", {"value": round(elapsed, 2),
                                                                   "threshold": round(self.t.duration_escalate
                                                                                      * self.estimate_s, 2),
                                                                   "estimate_s": self.estimate_s, "step": s.step})


class _LazyStore:
    """The monitor's own connection to the record store, opened by its first event."""

    def __init__(self, path: Any):
        self.path, self._store = path, None

    def event(self, op_id: str, kind: str, data: Any = None) -> None:
        if self._store is None:
            self._store = RecordStore(self.path)
        self._store.event(op_id, kind, data)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
