"""A real Dask cluster for the suite: one scheduler and two worker processes on 127.0.0.1, started
once per session as subprocesses (the `dask scheduler` / `dask worker` CLIs), dashboards off."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.conftest import built_once_per_run

from mobius.workspace.init import initialize

SCHEDULER = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MOBIUS_", "DASK_"))}


def worker_env() -> dict[str, str]:
    """What docs/executor.md tells operators to give `dask worker`: glibc's allocator left adaptive."""
    from mobius.executor.cluster import WORKER_MALLOC

    return {**clean_env(), "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": repr(WORKER_MALLOC)}


@dataclass
class Cluster:
    address: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start_worker(self, name: str, prefix: list[str] | None = None) -> subprocess.Popen:
        command = [*WORKER, self.address, "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1",
                   "--no-dashboard", "--name", name]
        proc = subprocess.Popen([*(prefix or []), *command], env=worker_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.processes.append(proc)
        return proc

    def wait_for_workers(self, count: int, timeout: float = 60) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            client.wait_for_workers(count, timeout=timeout)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def start_cluster(workers: int, prefix: list[str] | None = None) -> Cluster:
    port = free_port()
    cluster = Cluster(f"tcp://127.0.0.1:{port}")
    cluster.processes.append(subprocess.Popen(
        [*SCHEDULER, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], env=clean_env(),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    for n in range(workers):
        cluster.start_worker(f"worker-{n + 1}", prefix)
    return cluster


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Cluster]:
    """tcp://127.0.0.1:<free port> with two worker processes (each under a nanny, one thread)."""
    pytest.importorskip("distributed")
    cluster = start_cluster(2)
    try:
        cluster.wait_for_workers(2)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def executor_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("executor") / "ws"
    initialize(root, sample=True)
    return root


@pytest.fixture
def workspace_copy(executor_template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(executor_template, root, symlinks=True)
    return root


@pytest.fixture(scope="session")
def local_render(executor_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sushi-go rendered once per run by the local executor: the bytes every other executor must reproduce."""
    def build(folder: Path) -> str:
        root = folder / "ws"
        shutil.copytree(executor_template, root, symlinks=True)
        proc = subprocess.run([sys.executable, "-m", "mobius", "render", "sushi-go", "-w", str(root),
                               "--executor", "local"], env=clean_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return str(root / "out" / "sushi-go" / "preview.mp4")

    return Path(built_once_per_run(tmp_path_factory, "executor-local-render", build))


def wait_for(predicate, timeout: float, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None
