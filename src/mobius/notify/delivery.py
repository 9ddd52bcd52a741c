"""Delivery that never blocks or fails the operation it reports on.

The record store calls `Notifier.heard` after each commit; that only puts the happening in a queue.
A dispatcher thread turns happenings into messages (reading the record), and one courier thread per
destination sends them in order, each with bounded retries and exponential backoff, so a dead
webhook never delays the mail. Every attempt and its result is an event of the operation
(`notify.delivered`, `notify.failed` with `retry_in` or `gave_up`). At process exit `flush` waits at
most `wait_s` (3 s) and a 1 s grace for what is queued; anything still undelivered then is recorded as given
up, so a dead destination costs a command 4 s at most, and a kill -9 loses only the sending, never a record.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobius.config import Workspace
from mobius.log import get_logger
from mobius.notify.destinations import DeliveryError, Destination
from mobius.notify.message import Message, build
from mobius.records import STORE_NAME, RecordStore, observe

ATTEMPTS = 4  # first try plus three retries
BACKOFF_S = (0.5, 1.0, 2.0)  # before retry 1, 2, 3
ATTEMPT_TIMEOUT_S = 5.0
WAIT_AT_EXIT_S = 3.0
GRACE_AT_EXIT_S = 1.0  # after the wait: the couriers' last quick tries, then the process goes


@dataclass
class Happening:
    op_id: str
    kind: str
    data: dict[str, Any]


class _Pending:
    """A count of work not yet finished, with a wait that has a deadline (Queue.join has none)."""

    def __init__(self) -> None:
        self._n = 0
        self._cond = threading.Condition()

    def add(self) -> None:
        with self._cond:
            self._n += 1

    def done(self) -> None:
        with self._cond:
            self._n -= 1
            self._cond.notify_all()

    def wait(self, seconds: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._n <= 0, timeout=seconds)


class Courier(threading.Thread):
    """Sends to one destination, in order, recording each attempt in the operation's record."""

    def __init__(self, notifier: Notifier, destination: Destination):
        super().__init__(name=f"mobius-notify-{destination.label.split()[0]}", daemon=True)
        self.notifier, self.destination = notifier, destination
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.current: Message | None = None  # the message of the attempt under way

    def run(self) -> None:
        store = self.notifier.open_store()
        try:
            while True:
                message = self.inbox.get()
                try:
                    self.deliver(store, message)
                except Exception as exc:  # noqa: BLE001 - a courier never dies of one message
                    get_logger().warning("notify.courier_failed", error=f"{type(exc).__name__}: {exc}")
                finally:
                    self.current = None
                    self.notifier.pending.done()
        finally:
            store.close()

    def deliver(self, store: RecordStore, message: Message, attempts: int = ATTEMPTS) -> tuple[bool, str]:
        """Up to `attempts` tries with backoff; stops retrying once the process is exiting past its wait.
        Returns (delivered, the last answer or error)."""
        label = self.destination.label
        error = ""
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            self.current = message
            try:
                answer = self.destination.send(message, timeout=self.notifier.attempt_timeout())
            except DeliveryError as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - not ours (a bad header, a library's bug): still an attempt
                error = f"{type(exc).__name__}: {exc}"
            else:
                self.notifier.record(store, message.operation_id, "notify.delivered",
                                     {"destination": label, "message": message.event, "attempt": attempt,
                                      "answer": answer, "seconds": round(time.monotonic() - started, 3)})
                return True, answer
            last = attempt == attempts or self.notifier.closing.is_set()
            retry_in = None if last else BACKOFF_S[attempt - 1]
            self.notifier.record(store, message.operation_id, "notify.failed",
                                 {"destination": label, "message": message.event, "attempt": attempt,
                                  "error": error, "seconds": round(time.monotonic() - started, 3),
                                  "retry_in": retry_in, "gave_up": last})
            if last:
                return False, error
            if self.notifier.closing.wait(retry_in):  # exiting: one more try now, then give up
                continue
        return False, error


class Notifier:
    """Notifications for one workspace: observes its record store, dispatches and delivers in threads."""

    def __init__(self, ws: Workspace, destinations: list[Destination], *, secrets: list[str],
                 wait_s: float = WAIT_AT_EXIT_S,
                 report: Callable[[str, str], str | None] | None = None):
        self.ws = ws
        self.store_path = ws.state / STORE_NAME
        self.destinations = destinations
        self.secrets = secrets
        self.wait_s = wait_s
        self.report = report or self._render_report
        self.pending = _Pending()
        self.closing = threading.Event()
        self._inbox: queue.Queue[Happening] = queue.Queue()
        self.couriers = [Courier(self, d) for d in destinations]
        self._dispatcher = threading.Thread(target=self._dispatch, name="mobius-notify", daemon=True)
        self._started = False
        self._lock = threading.Lock()
        self.pid = os.getpid()

    # the observer (runs on the recording thread: only queue)
    def heard(self, store_path: Path, op_id: str, kind: str, data: dict[str, Any]) -> None:
        if (kind.startswith("notify.") or store_path != self.store_path or self.closing.is_set()
                or os.getpid() != self.pid):  # a forked child has the observer but not the threads
            return
        self._start()
        self.pending.add()
        self._inbox.put(Happening(op_id, kind, data))

    def _start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                for courier in self.couriers:
                    courier.start()
                self._dispatcher.start()

    def open_store(self) -> RecordStore:
        return RecordStore(self.store_path)

    def attempt_timeout(self) -> float:
        return ATTEMPT_TIMEOUT_S if not self.closing.is_set() else GRACE_AT_EXIT_S

    def record(self, store: RecordStore, op_id: str, kind: str, data: dict[str, Any]) -> None:
        try:
            store.event(op_id, kind, data)
        except Exception as exc:  # noqa: BLE001 - a full disk must not turn a sent message into a crash
            get_logger().warning("notify.not_recorded", operation=op_id, kind=kind, error=str(exc))

    def _dispatch(self) -> None:
        store = self.open_store()
        try:
            while True:
                happening = self._inbox.get()
                try:
                    message = self.message_for(store, happening)
                    if message is not None:
                        for courier in self.couriers:
                            self.pending.add()
                            courier.inbox.put(message)
                except Exception as exc:  # noqa: BLE001 - one unreadable happening must not stop the rest
                    get_logger().warning("notify.build_failed", operation=happening.op_id, kind=happening.kind,
                                         error=f"{type(exc).__name__}: {exc}")
                finally:
                    self.pending.done()
        finally:
            store.close()

    def message_for(self, store: RecordStore, happening: Happening) -> Message | None:
        op = store.get(happening.op_id)
        if op is None:
            return None
        events = store.events(happening.op_id)
        message = build(op, happening.kind, happening.data, events, self.report)
        if message is None:
            return None
        message.time = next((e.time for e in reversed(events) if e.kind == happening.kind), op.updated)
        return message.redacted(self.secrets)

    def _render_report(self, op_id: str, kind: str) -> str | None:
        from mobius.ops.report import render  # the report renderer is heavy; only a completion needs it

        try:
            return render(self.ws, op_id, kind=kind, fmt="md")
        except Exception as exc:  # noqa: BLE001 - a message without its report still goes out
            return f"(the report could not be rendered: {type(exc).__name__}: {exc})"

    def flush(self, wait_s: float | None = None) -> bool:
        """Wait (at most `wait_s`) for everything heard so far to be delivered or given up; True when done.
        Past the wait, couriers stop retrying, and what is still queued is recorded as undelivered."""
        if not self._started:
            return True
        done = self.pending.wait(self.wait_s if wait_s is None else wait_s)
        if done:
            return True
        self.closing.set()
        if self.pending.wait(GRACE_AT_EXIT_S):  # the last attempts, at a short timeout
            return True
        with contextlib.closing(self.open_store()) as store:
            for courier in self.couriers:
                if courier.current is not None:
                    self.record(store, courier.current.operation_id, "notify.failed",
                                {"destination": courier.destination.label, "message": courier.current.event,
                                 "attempt": None, "error": "no answer before the process exited",
                                 "retry_in": None, "gave_up": True})
                while True:
                    try:
                        message = courier.inbox.get_nowait()
                    except queue.Empty:
                        break
                    self.record(store, message.operation_id, "notify.failed",
                                {"destination": courier.destination.label, "message": message.event, "attempt": 0,
                                 "error": f"not sent: the process exited after waiting {self.wait_s:g} s",
                                 "retry_in": None, "gave_up": True})
                    self.pending.done()
        return False

    def install(self) -> Notifier:
        self._unobserve = observe(self.heard)
        atexit.register(self.flush)
        return self

    def uninstall(self) -> None:
        """Stop observing (tests, a service shutting down); flushes first."""
        self.flush()
        with contextlib.suppress(AttributeError):
            self._unobserve()
        atexit.unregister(self.flush)
