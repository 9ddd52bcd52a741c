"""The default executor: a pool on this machine.

Threads for I/O-bound work (hashing, uploads: hashlib and sockets release the GIL); processes for
CPU-bound work (rendering, SSIM: NumPy and x264 hold the GIL too often for threads to help).
One item, or one worker, runs inline: no pool to start, and the caller's progress stays live.
A process killed mid-item breaks a ProcessPoolExecutor; the pool is rebuilt and the unfinished
items are submitted again, each counting one attempt.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Hashable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from mobius.config import Workspace
from mobius.executor.base import DEFAULT_RETRIES, Item, ItemOutcome, TaskFunction, call_item, crashed_outcome


class LocalExecutor:
    """A thread or process pool of `workers` (default: one per core)."""

    def __init__(self, *, workers: int | None = None, processes: bool = True):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.processes = processes
        self.name = f"local ({self.workers} {'processes' if processes else 'threads'})"
        self._pool: ProcessPoolExecutor | ThreadPoolExecutor | None = None
        self._cancelled = False

    def _new_pool(self) -> ProcessPoolExecutor | ThreadPoolExecutor:
        if self.processes:
            # forkserver: no fork of a process that holds threads (rich, logging), cheaper than spawn per worker
            context = multiprocessing.get_context("forkserver")
            return ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="mobius-item")

    def ensure_reachable(self, folders: Sequence[Hashable]) -> None:
        """Every worker is on this machine: nothing to probe."""

    def results(self, fn: TaskFunction, ws: Workspace, items: Sequence[Item], *,
                retries: int = DEFAULT_RETRIES) -> Iterator[ItemOutcome]:
        if len(items) <= 1 or self.workers == 1:
            yield from self._inline(fn, ws, items, retries)
            return
        attempts = {item.key: 0 for item in items}
        queue = list(items)
        while queue and not self._cancelled:
            self._pool = self._pool or self._new_pool()
            running: dict[Future, Item] = {}
            for item in queue:
                attempts[item.key] += 1
                running[self._pool.submit(call_item, fn, ws, item.key, item.value)] = item
            queue = []
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = running.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        queue.append(item)  # its worker died; every unfinished item of the pool lands here
                        continue
                    except Exception as exc:  # noqa: BLE001 - any other failure is retried
                        if attempts[item.key] <= retries:
                            queue.append(item)
                        else:
                            yield crashed_outcome(item.key, exc, attempts[item.key])
                        continue
                    outcome.attempts = attempts[item.key]
                    yield outcome
            if queue and isinstance(self._pool, ProcessPoolExecutor) and self._pool._broken:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            exhausted = [item for item in queue if attempts[item.key] > retries]
            for item in exhausted:
                yield ItemOutcome(item.key, False, error=f"its worker died on each of {attempts[item.key]} tries",
                              attempts=attempts[item.key])
            queue = [item for item in queue if attempts[item.key] <= retries]

    def _inline(self, fn: TaskFunction, ws: Workspace, items: Sequence[Item], retries: int) -> Iterator[ItemOutcome]:
        for item in items:
            if self._cancelled:
                return
            for attempt in range(1, retries + 2):
                try:
                    outcome = call_item(fn, ws, item.key, item.value)
                except Exception as exc:  # noqa: BLE001 - retried, then reported
                    if attempt <= retries:
                        continue
                    outcome = crashed_outcome(item.key, exc, attempt)
                outcome.attempts = attempt
                yield outcome
                break

    def cancel(self) -> None:
        self._cancelled = True
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
