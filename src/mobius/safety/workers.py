"""Methods of one object run in forked worker processes, one interpreter each.

Why processes (measured on 2 cores, 100,000 files of 1-4 KB): work made of many short system calls
(open, fstat, read, close of a 2 KB file) spends its time handing the interpreter lock between
threads: a `perf` profile of 8 copy threads showed 23% of all CPU in futex wait and wake, and the
media copy took 23.7-36.7 s on threads against 10.8-13.7 s in 4 processes. A process has its own lock,
so its system calls wait on nobody. A backup's reader threads showed the same disease (about 34 futex
calls per file); its numbers are in docs/backup.md.

The workers are forked when the pool starts, from the main thread, before the caller starts threads
of its own (a fork copies only the forking thread: a lock another thread held would stay held in the
child). Each inherits the object whose methods it runs, and asks the kernel to SIGKILL it when the
parent dies (PR_SET_PDEATHSIG), so a killed command leaves no worker behind it; workers ignore
SIGINT (Ctrl-C is the parent's to handle, and its end ends them). A worker that dies breaks the pool:
the call raises VerificationError with the caller's one line, never a traceback.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future  # BrokenProcessPool is one (its module imports multiprocessing)
from typing import Any

from mobius.errors import VerificationError
from mobius.safety.process import process_alive

PR_SET_PDEATHSIG = 1
WATCH_S = 0.5  # how often a wait for a result looks whether every worker is still alive
_state: Any = None  # in a worker: the object it was forked with


def can_fork_workers() -> bool:
    """Whether workers may be forked here: fork exists and this is the main thread (a worker dies with the
    thread that forked it, which must live as long as the process)."""
    return hasattr(os, "fork") and threading.current_thread() is threading.main_thread()


def _start_worker(parent: int, started: Callable[[Any, int], None] | None) -> None:
    """In each worker, first: die with the parent; then the caller's own start-up (`started`)."""
    with_errno = ctypes.CDLL(None, use_errno=True)
    with_errno.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if started is not None:
        started(_state, parent)


def _call(method: str, part: Any) -> Any:
    return getattr(_state, method)(part)


class ForkedWorkers:
    """`processes` forked workers, each running methods of its copy of `state`.

    `died` is the one line a dead worker's call raises (what was lost, what to do is in `hint`);
    `started(state, parent_pid)` runs first in each worker."""

    def __init__(self, state: object, processes: int, *, died: str, hint: str,
                 started: Callable[[Any, int], None] | None = None):
        import multiprocessing  # here, not at the top: every command that imports a backup or a copy pays it
        from concurrent.futures import ProcessPoolExecutor

        global _state
        self.died, self.hint = died, hint
        self._abandoned = False
        _state = state
        # the workers must never collect the parent's objects (a finalizer of one could wait on a thread
        # the worker does not have): frozen while they are forked, as safety/child.py does
        gc.freeze()
        try:
            self.pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("fork"),
                                            initializer=_start_worker, initargs=(os.getpid(), started))
            self.pool.submit(int).result()  # forks every worker now, while this process has one thread
        finally:
            gc.unfreeze()
            _state = None
        self.processes = processes
        self._pids = [process.pid for process in getattr(self.pool, "_processes", {}).values()]

    def submit(self, method: str, part: Any) -> Future:
        """`state.method(part)` on a worker; the future's result raises `broken` if a worker died."""
        try:
            return self.pool.submit(_call, method, part)
        except BrokenExecutor:
            raise self.broken() from None

    def result(self, future: Future) -> Any:
        """The call's result, or `broken` once a worker is dead, even where the pool itself would wait forever.

        Python's pool (3.11) reads every result from one shared pipe: a worker killed in the middle of sending
        a large result leaves half a message there, and the pool's reader thread waits for the rest while the
        other workers keep the pipe open (seen: a killed media copy worker hung the migration, 1 run in 12-40).
        So a wait looks at the workers every WATCH_S, and a dead one abandons the pool."""
        while True:
            try:
                return future.result(timeout=WATCH_S)
            except BrokenExecutor:
                raise self.broken() from None
            except TimeoutError:
                if any(not process_alive(pid) for pid in self._pids):
                    self._abandon()
                    raise self.broken() from None

    def map(self, method: str, parts: list) -> list:
        """`state.method` over `parts`, one part per worker call; results in order."""
        futures = [self.submit(method, part) for part in parts]
        try:
            return [self.result(future) for future in futures]
        finally:
            for future in futures:
                future.cancel()

    def _abandon(self) -> None:
        """Kill every worker, then close this process's end of the result pipe, its last writer: the pool's
        reader thread gets end-of-file instead of the rest of a message, marks the pool broken and ends (the
        interpreter joins that thread at exit, so it must end). The pool's `_processes` and `_result_queue` are
        CPython's own (3.8-3.13); where they are missing, the workers are not watched and the pool is as before."""
        self._abandoned = True
        for pid in self._pids:
            if process_alive(pid):  # a dead one may already be reaped, and its pid free for another process
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        queue = getattr(self.pool, "_result_queue", None)
        writer = getattr(queue, "_writer", None)
        if writer is not None:
            with contextlib.suppress(OSError):
                writer.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def broken(self) -> VerificationError:
        return VerificationError(self.died, hint=self.hint)

    def close(self) -> None:
        if not self._abandoned:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ForkedWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
