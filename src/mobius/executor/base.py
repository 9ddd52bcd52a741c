"""The executor contract: idempotent items in, outcomes out as they finish.

An item is (key, value): the key names it in messages and records, the value is what the task
function receives. Items must be idempotent (rendering a game twice gives the same bytes under
the same name), because every executor may run an item again: after a crash of its worker, or
as a retry. Task functions take the workspace first; the executor hands them a copy with the
secrets removed (`portable_workspace`), so the settings travel with the work and no worker
re-reads a `.env` or sees a password.

A task that raises a MobiusError failed for a reason that will not change on another worker
(a missing asset, a bad spec): it is not retried. Anything else (an OSError, a killed worker)
is retried up to `retries` times, elsewhere when the executor has another worker.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mobius.config import Workspace, mask_secret
from mobius.errors import MobiusError

DEFAULT_RETRIES = 2

TaskFunction = Callable[[Workspace, Any], Any]


@dataclass(frozen=True)
class Item:
    key: str
    value: Any


@dataclass
class ItemOutcome:
    """What became of one item of an executor run: its value, or the one-line error that stopped it on every try."""

    key: str
    ok: bool
    value: Any = None
    error: str | None = None
    attempts: int = 1
    seconds: float = 0.0
    worker: str | None = None
    exit_code: int = 2  # a MobiusError's own code (1 for bad input); 2 for crashes and dead workers


class Executor(Protocol):
    """Runs items of one kind of work. Implementations: LocalExecutor, DaskExecutor."""

    name: str
    workers: int

    def results(self, fn: TaskFunction, ws: Workspace, items: Sequence[Item], *,
                retries: int = DEFAULT_RETRIES) -> Iterator[ItemOutcome]:
        """One ItemOutcome per item, in the order they finish."""
        ...

    def ensure_reachable(self, folders: Sequence[Hashable]) -> None:
        """Refuse (EnvironmentProblem, exit 3) when a worker cannot read these folders."""
        ...

    def cancel(self) -> None:
        """Drop the items not yet finished; running ones stop as soon as the engine allows."""
        ...

    def close(self) -> None: ...


def portable_workspace(ws: Workspace) -> Workspace:
    """The workspace as it travels to workers: same root and settings, secret values removed.

    A setting counts as secret when masking would change it (a password in a URL, a secret-looking
    name); work that needs one must receive it from the worker's own environment, never the graph.
    """
    values = ws.settings.to_dict()
    clean = {name: (None if value is not None and mask_secret(name.upper(), value) != value else value)
             for name, value in values.items()}
    return Workspace(root=ws.root, settings=dataclasses.replace(ws.settings, **clean))


def crashed_outcome(key: str, exc: BaseException, attempts: int, *, error: str | None = None) -> ItemOutcome:
    """An item that raised something not ours (after its retries): exit 5 when it was a full disk (the person
    frees space, as for our own ResourceError), else 2."""
    from mobius.errors import EXIT_RESOURCE, EXIT_VERIFY, is_disk_full

    return ItemOutcome(key, False, error=error or f"{type(exc).__name__}: {exc}", attempts=attempts,
                       exit_code=EXIT_RESOURCE if is_disk_full(exc) else EXIT_VERIFY)


def call_item(fn: TaskFunction, ws: Workspace, key: str, value: Any) -> ItemOutcome:
    """Run one item where it lands (any process, any machine); a MobiusError becomes a failed ItemOutcome.

    Other exceptions propagate so the executor retries the item.
    """
    import os
    import socket

    started = time.monotonic()
    where = f"{socket.gethostname()}:{os.getpid()}"
    try:
        result = fn(ws, value)
    except MobiusError as exc:
        return ItemOutcome(key, False, error=exc.one_line(), seconds=time.monotonic() - started, worker=where,
                       exit_code=exc.exit_code)
    return ItemOutcome(key, True, value=result, seconds=time.monotonic() - started, worker=where)


@dataclass
class Run:
    """The outcomes of one run, finished and failed, in the order of the items."""

    what: str
    executor: str
    outcomes: list[ItemOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def done(self) -> list[ItemOutcome]:
        return [o for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[ItemOutcome]:
        return [o for o in self.outcomes if not o.ok]

    def values(self) -> list[Any]:
        return [o.value for o in self.done]

    def summary(self) -> dict[str, object]:
        return {"what": self.what, "executor": self.executor, "seconds": round(self.seconds, 3),
                "done": [o.key for o in self.done],
                "failed": {o.key: o.error for o in self.failed}}

    def raise_if_failed(self) -> None:
        """Raise naming every failed item; finished items stay where they are.

        Exit 2 (VerificationError), or the items' own code when every one failed with the same
        MobiusError class (a missing input stays exit 1 whichever executor ran it) or on a full disk (exit 5).
        """
        from mobius.errors import EXIT_INPUT, EXIT_RESOURCE, InputError, ResourceError, VerificationError

        if not self.failed:
            return
        first = self.failed[0]
        names = ", ".join(o.key for o in self.failed)
        details = [f"failed {o.key}: {o.error}" for o in self.failed]
        details += [f"finished (kept) {o.key}" for o in self.done]
        codes = {o.exit_code for o in self.failed}
        error = InputError if codes == {EXIT_INPUT} else ResourceError if codes == {EXIT_RESOURCE} else \
            VerificationError
        then = "free space on that filesystem" if error is ResourceError else "fix the named item(s)"
        raise error(
            f"{self.what}: {len(self.failed)} of {len(self.outcomes)} item(s) failed: {names} "
            f"({first.key}: {first.error})",
            hint=f"{len(self.done)} finished item(s) were kept; {then} and run the command again",
            details=details)
