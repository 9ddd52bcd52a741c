"""Run a CPU-bound Python function on the other core, in a forked child, while the caller works.

Threads do not help when the work is many short steps each holding the GIL (a stat or a hash of
a 2 KB file per step): two threads run one after the other, and worse than one. A forked child
has its own interpreter. It only calls `fn` and writes the pickled result (or the exception) to a
pipe, touching no lock, file or connection of the parent, and leaves by `os._exit` (no cleanup
of the parent's objects runs in it, and its garbage collector never visits them). Where fork does
not exist, `fn` runs when the result is asked.
"""

from __future__ import annotations

import gc
import os
import pickle
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def in_child(fn: Callable[..., T], *args: object) -> Callable[[], T]:
    """Start `fn(*args)` in a child process; the returned function waits for it and returns its result
    (or raises the exception the child raised)."""
    if not hasattr(os, "fork"):
        return lambda: fn(*args)
    read_end, write_end = os.pipe()
    # The child must never collect the parent's objects: a finalizer of one would run there, and some
    # wait for threads the child does not have (a multithreaded zstd context joins its workers: hung).
    gc.freeze()
    pid = os.fork()
    if pid != 0:
        gc.unfreeze()
    if pid == 0:  # pragma: no cover - the child process
        code = 0
        try:
            os.close(read_end)
            try:
                payload = pickle.dumps((True, fn(*args)), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as exc:  # noqa: BLE001 - handed to the parent
                payload = pickle.dumps((False, exc if isinstance(exc, Exception) else RuntimeError(repr(exc))))
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(payload)
        except BaseException:  # noqa: BLE001 - nothing may escape the child
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)

    def result() -> T:
        try:
            with os.fdopen(read_end, "rb") as pipe:
                payload = pipe.read()
        finally:
            os.waitpid(pid, 0)
        if not payload:
            raise OSError("the helper process ended without a result")
        ok, value = pickle.loads(payload)
        if not ok:
            raise value
        return value

    return result
