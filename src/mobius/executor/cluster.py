"""Dask distributed: the executor for work that outgrows one machine (`pip install 'mobius[dask]'`).

Chosen on measurements (docs/executor.md): light, a local cluster ready in about a second, and
its communication stays on 127.0.0.1. With MOBIUS_DASK_SCHEDULER (tcp://host:8786 or tls://...)
the run joins that cluster; without one it starts a LocalCluster on 127.0.0.1 and stops it afterwards.
That implicit cluster speaks TLS with a certificate made for the run (`Security.temporary()`, held in
memory, never written): a Dask cluster runs whatever code a connected client sends, so without it any
local user could connect to the port and run code as the Mobius user. Its dashboard is off.

Failure handling is Dask's own: a task whose worker dies is rescheduled on another worker (up to
`distributed.scheduler.allowed-failures`, then KilledWorker), and `retries` re-runs a task that
raised. TLS: a tls:// scheduler is reached with `distributed.Security()`, which reads the
certificate paths from Dask's configuration (DASK_DISTRIBUTED__COMM__TLS__CA_FILE,
..._CLIENT__CERT, ..._CLIENT__KEY); Mobius refuses a tls:// scheduler without a CA file.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mobius.config import Workspace, mask_text
from mobius.errors import EnvironmentProblem, InputError
from mobius.executor.base import DEFAULT_RETRIES, Item, ItemOutcome, TaskFunction, call_item, crashed_outcome
from mobius.log import get_logger

CONNECT_TIMEOUT_S = 15
WORKER_WAIT_S = 30
# Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's adaptive mmap
# threshold: every 1 MiB hashing buffer and every video frame array is then mmap'd, zero-faulted and
# unmapped. Measured here: hashing 2,000 small files 4.3 s in such a worker against 0.13 s with these
# values (renders ~2x slower). Operators set the same on their workers (docs/executor.md).
WORKER_MALLOC = {"MALLOC_TRIM_THRESHOLD_": 268_435_456, "MALLOC_MMAP_THRESHOLD_": 33_554_432}


# The implicit cluster's HTTP side. Dask always starts an HTTP server (dashboard_address=None means
# its default, 8787 on every interface): bind it to a free loopback port and give it no routes, so
# there is no dashboard, no /metrics and no proxy, only an empty listener nobody can use.
LOOPBACK_ANY_PORT = "127.0.0.1:0"
NO_HTTP_ROUTES = {"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}


def _require_distributed():
    try:
        import distributed
    except ImportError:
        raise EnvironmentProblem("the dask executor needs Dask distributed, which is not installed",
                                 hint="pip install 'mobius[dask]', or use --executor local") from None
    return distributed


def security_for(address: str):
    """Dask `Security` for a tls:// scheduler (from Dask's TLS configuration); None for tcp://."""
    if not address.startswith("tls://"):
        return None
    distributed = _require_distributed()
    security = distributed.Security(require_encryption=True)
    if not security.tls_ca_file:
        raise EnvironmentProblem(f"MOBIUS_DASK_SCHEDULER is {mask_text(address)} but no TLS CA file is configured",
                                 hint="set DASK_DISTRIBUTED__COMM__TLS__CA_FILE, ..._CLIENT__CERT and "
                                      "..._CLIENT__KEY (see docs/executor.md)")
    return security


def check_address(address: str) -> str:
    if not address.startswith(("tcp://", "tls://")):
        raise InputError(f"MOBIUS_DASK_SCHEDULER must start with tcp:// or tls://, not {mask_text(address)!r}",
                         hint="e.g. MOBIUS_DASK_SCHEDULER=tcp://scheduler:8786")
    return address


class DaskExecutor:
    """Items as Dask tasks on a running scheduler, or on a LocalCluster started for this run."""

    def __init__(self, *, scheduler: str | None = None, workers: int | None = None, processes: bool = True):
        distributed = _require_distributed()
        self._cluster = None
        self._futures: list[Any] = []
        log = get_logger()
        if scheduler:
            address = check_address(scheduler)
            try:
                self._client = distributed.Client(address, security=security_for(address),
                                                  timeout=CONNECT_TIMEOUT_S, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise EnvironmentProblem(f"cannot reach the Dask scheduler at {mask_text(address)}: {exc}",
                                         hint="start it (`dask scheduler`) or fix MOBIUS_DASK_SCHEDULER") from None
            self.name = f"dask ({mask_text(address)})"
        else:
            import dask

            count = max(1, workers or os.cpu_count() or 1)
            environ = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_MALLOC.items()}
            with dask.config.set({**environ, **NO_HTTP_ROUTES}):
                self._cluster = distributed.LocalCluster(
                    n_workers=count, threads_per_worker=1 if processes else 4, processes=True, host="127.0.0.1",
                    protocol="tls://", security=distributed.Security.temporary(),
                    dashboard_address=LOOPBACK_ANY_PORT, scheduler_kwargs={"dashboard": False},
                    worker_dashboard_address=LOOPBACK_ANY_PORT,
                    # CRITICAL: a worker's heartbeat racing the cluster's own shutdown logs an ERROR with a
                    # traceback on our stderr; a real item failure comes back as its ItemOutcome instead
                    silence_logs=logging.CRITICAL)
            self._client = distributed.Client(self._cluster, set_as_default=False)
            self.name = f"dask (local cluster, {count} workers, TLS)"
        try:
            self._client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except TimeoutError:
            self.close()
            raise EnvironmentProblem(f"{self.name}: no worker joined within {WORKER_WAIT_S} s",
                                     hint="start workers with `dask worker <scheduler address>`") from None
        self.workers = len(self._client.scheduler_info(n_workers=-1)["workers"])
        log.info("executor.started", executor=self.name, workers=self.workers)

    def ensure_reachable(self, folders: Sequence[Path]) -> None:
        """Write a probe file in each folder here, have every worker read it back; refuse when one can't.

        Detects a local path used with remote workers (a different machine, another mount) instead
        of assuming; the probe files carry temp names, so a killed run's are swept.
        """
        from mobius.safety.atomic import TEMP_PREFIX, atomic_write_text

        token = secrets.token_hex(16)
        probes: list[str] = []
        try:
            for folder in folders:
                probe = Path(folder) / f"{TEMP_PREFIX}{os.getpid()}-probe-{token[:8]}"
                atomic_write_text(probe, token)
                probes.append(str(probe))
            answers = self._client.run(read_probes, probes, token)
        finally:
            for probe in probes:
                Path(probe).unlink(missing_ok=True)
        for worker, problems in sorted(answers.items()):
            if problems:
                raise EnvironmentProblem(
                    f"{self.name}: worker {worker} cannot reach {problems[0]}: the folder is local to this machine",
                    hint="put the library and outputs on storage every worker mounts at the same path, "
                         "or use --executor local")

    def results(self, fn: TaskFunction, ws: Workspace, items: Sequence[Item], *,
                retries: int = DEFAULT_RETRIES) -> Iterator[ItemOutcome]:
        distributed = _require_distributed()
        run = secrets.token_hex(4)
        keys: dict[str, str] = {}
        futures: list[Any] = []
        for item in items:
            future = self._client.submit(call_item, fn, ws, item.key, item.value, key=f"mobius-{run}-{item.key}",
                                         retries=retries, pure=False)
            keys[future.key] = item.key
            futures.append(future)
        self._futures = futures
        for future, result in distributed.as_completed(futures, loop=self._client.loop, with_results=True,
                                                             raise_errors=False):
            key = keys[future.key]
            if isinstance(result, ItemOutcome):
                yield result
            elif isinstance(result, BaseException):
                died = type(result).__name__ == "KilledWorker"
                yield crashed_outcome(key, result, retries + 1, error="its worker died on every try" if died else None)
            else:
                yield ItemOutcome(key, False, error=f"unexpected task result {type(result).__name__}")

    def cancel(self) -> None:
        if self._futures:
            self._client.cancel(self._futures)

    def close(self) -> None:
        import contextlib

        with contextlib.suppress(Exception):
            self._client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()


def read_probes(paths: list[str], token: str) -> list[str]:
    """On a worker: the probe paths it cannot read with the expected contents."""
    missing = []
    for path in paths:
        try:
            ok = Path(path).read_text(encoding="utf-8") == token
        except OSError:
            ok = False
        if not ok:
            missing.append(str(Path(path).parent))
    return missing
