"""One executor for per-item work (renders, golden checks, hashing): a local pool by default, Dask
distributed when a library outgrows one machine.

Public API:
- `open_executor(ws, kind=None, *, cpu_bound=True, workers=None) -> Executor` (context manager):
  `kind` is "local" or "dask" (default MOBIUS_EXECUTOR); dask joins MOBIUS_DASK_SCHEDULER or starts
  a LocalCluster on 127.0.0.1 for the run.
- `run_items(ws, what, fn, items, *, executor=None, reach=(), sweep=(), progress=None, on_outcome=None)
  -> Run`: runs every item, records the operation, sweeps the temp files killed workers left; never
  raises for a failed item (see `Run.raise_if_failed`, exit 2 naming the items).
- `batches(values, size)` and `hash_batch(ws, paths)`: small items travel a few hundred per task.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from mobius.config import Workspace, mask_text
from mobius.executor.base import DEFAULT_RETRIES, Executor, Item, ItemOutcome, Run, TaskFunction, portable_workspace
from mobius.executor.batching import DEFAULT_BATCH, batches, hash_batch
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress
from mobius.records import keep_partial_result, records_call

KINDS = ("local", "dask")

__all__ = ["DEFAULT_BATCH", "KINDS", "Executor", "Item", "ItemOutcome", "Run", "batches", "hash_batch",
           "open_executor", "portable_workspace", "run_items", "using"]


@contextlib.contextmanager
def open_executor(ws: Workspace, kind: str | None = None, *, cpu_bound: bool = True,
                  workers: int | None = None) -> Iterator[Executor]:
    """The executor the settings (or `kind`) choose, closed (its local cluster stopped) on exit.

    `workers` sizes the local pool or local cluster (a command's --workers); default MOBIUS_EXECUTOR_WORKERS.
    """
    from mobius.errors import InputError

    chosen = kind or ws.settings.executor
    if chosen not in KINDS:
        raise InputError(f"unknown executor {chosen!r}", hint="use --executor local or --executor dask")
    workers = workers or ws.settings.executor_workers
    if chosen == "dask":
        from mobius.executor.cluster import DaskExecutor

        executor: Executor = DaskExecutor(scheduler=ws.settings.dask_scheduler, workers=workers, processes=cpu_bound)
    else:
        from mobius.executor.local import LocalExecutor

        executor = LocalExecutor(workers=workers, processes=cpu_bound)
    try:
        yield executor
    finally:
        executor.close()


@contextlib.contextmanager
def using(ws: Workspace, executor: Executor | str | None = None, *, cpu_bound: bool = True) -> Iterator[Executor]:
    """`executor` itself when the caller opened one (so several phases share a cluster), else a new one."""
    if executor is None or isinstance(executor, str):
        with open_executor(ws, executor, cpu_bound=cpu_bound) as opened:
            yield opened
    else:
        yield executor


def run_items(ws: Workspace, what: str, fn: TaskFunction, items: Sequence[Item], *, executor: Executor,
              reach: Iterable[Path] = (), sweep: Iterable[Path] = (), retries: int = DEFAULT_RETRIES,
              progress: Progress | None = None, on_outcome: Callable[[ItemOutcome], None] | None = None) -> Run:
    """Run `fn(ws, item.value)` for every item on `executor`; outcomes in the order of the items.

    Probes that every worker reaches the existing `reach` folders first (exit 3 when not). Ctrl-C cancels
    what has not finished. Afterwards removes the `.mobius-tmp-*` files that dead workers left in
    `sweep`. A top-level run is recorded as an operation (`what`, which items finished, which failed);
    inside an outer operation (a migration step) the outer one owns the evidence and nothing is added.
    `on_outcome` sees each outcome as it arrives (so a caller can commit each batch: a killed run keeps
    what finished); when it raises, the unfinished items are cancelled and the error propagates.
    """
    executor.ensure_reachable([Path(f) for f in dict.fromkeys(reach) if Path(f).is_dir()])
    return _recorded_run(ws, what, fn, items, executor=executor, sweep=sweep, retries=retries,
                         progress=progress or NoProgress(), on_outcome=on_outcome)


@records_call(lambda args: args["what"], nested=False, bound=None,
              params=lambda args: {"items": [i.key for i in args["items"]], "executor": args["executor"].name},
              result=lambda run: run.summary(), status=lambda run: "failed" if run.failed else "completed")
def _recorded_run(ws: Workspace, what: str, fn: TaskFunction, items: Sequence[Item], *, executor: Executor,
                  sweep: Iterable[Path], retries: int, progress: Progress,
                  on_outcome: Callable[[ItemOutcome], None] | None) -> Run:
    """The run itself, as one operation: interrupted, its record still names the items that finished."""
    from mobius.safety.leftovers import sweep as sweep_leftovers

    log = get_logger()
    run = Run(what, executor.name)
    order = {item.key: n for n, item in enumerate(items)}
    started = time.monotonic()
    progress.start(what, total=len(items), unit="items")
    try:
        for outcome in executor.results(fn, portable_workspace(ws), items, retries=retries):
            outcome.error = mask_text(outcome.error) if outcome.error else None
            run.outcomes.append(outcome)
            log.info("executor.item", what=what, item=outcome.key, ok=outcome.ok, error=outcome.error,
                     attempts=outcome.attempts, seconds=round(outcome.seconds, 3), worker=outcome.worker)
            progress.advance()
            if on_outcome is not None:
                on_outcome(outcome)
    except BaseException:
        executor.cancel()
        keep_partial_result(run.summary())
        raise
    finally:
        progress.finish()
        sweep_leftovers([Path(f) for f in sweep])
    run.outcomes.sort(key=lambda o: order[o.key])
    run.seconds = time.monotonic() - started
    return run
