"""The Dask executor against a real cluster of separate processes: same bytes, survives a killed worker,
refuses workers that cannot see the library."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import clean_env, start_cluster, wait_for

pytestmark = pytest.mark.slow

MOBIUS = [sys.executable, "-m", "mobius"]
PASSWORD = "hunter2-not-for-workers"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mobius(root: Path, *args: str, scheduler: str | None = None) -> subprocess.CompletedProcess[str]:
    env = clean_env()
    env["MOBIUS_DATABASE_URL"] = f"postgresql://mobius:{PASSWORD}@db.invalid/mobius"
    if scheduler:
        env.update(MOBIUS_EXECUTOR="dask", MOBIUS_DASK_SCHEDULER=scheduler)
    return subprocess.run([*MOBIUS, *args, "-w", str(root)], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)


def temps(root: Path) -> list[Path]:
    return sorted(root.rglob(".mobius-tmp-*"))


def test_cluster_render_is_byte_identical_to_local(dask_cluster, local_render: Path, workspace_copy: Path):
    proc = mobius(workspace_copy, "render", "sushi-go", "--json", scheduler=dask_cluster.address)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    rendered = workspace_copy / "out" / "sushi-go" / "preview.mp4"
    assert sha256(rendered) == sha256(local_render)
    assert result["frames"] == 900
    assert temps(workspace_copy) == []
    # the database password stayed out of the task graph's logs and the operation record
    for path in [*workspace_copy.joinpath("logs").rglob("*"), *workspace_copy.joinpath("state").rglob("*")]:
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_cluster_pipeline_test_equals_local(dask_cluster, workspace_copy: Path):
    local = mobius(workspace_copy, "pipeline", "test", "love-letter", "--json", "--executor", "local")
    remote = mobius(workspace_copy, "pipeline", "test", "love-letter", "--json", scheduler=dask_cluster.address)
    assert local.returncode == remote.returncode == 0, remote.stderr
    assert json.loads(local.stdout)["games"] == json.loads(remote.stdout)["games"]
    assert temps(workspace_copy) == []


def test_worker_killed_mid_render_reruns_elsewhere(dask_cluster, local_render: Path, workspace_copy: Path):
    env = clean_env()
    env.update(MOBIUS_EXECUTOR="dask", MOBIUS_DASK_SCHEDULER=dask_cluster.address)
    command = subprocess.Popen([*MOBIUS, "render", "sushi-go", "--json", "-w", str(workspace_copy)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    out_dir = workspace_copy / "out" / "sushi-go"
    # the half-written preview's temp name carries the pid of the worker process writing it
    partial = wait_for(lambda: [p for p in out_dir.glob(".mobius-tmp-*-preview.mp4") if p.stat().st_size > 0],
                       timeout=120)
    assert partial, "the render never started writing"
    worker_pid = int(partial[0].name.split("-")[2])
    os.kill(worker_pid, signal.SIGKILL)
    stdout, stderr = command.communicate(timeout=300)
    assert command.returncode == 0, stderr
    assert sha256(out_dir / "preview.mp4") == sha256(local_render)
    assert temps(workspace_copy) == []
    events = [json.loads(line) for log in (workspace_copy / "logs").glob("*-render*.jsonl")
              for line in log.read_text().splitlines() if '"executor.item"' in line]
    finished_by = [e["worker"] for e in events if e["item"] == "sushi-go" and e["ok"]]
    assert len(finished_by) == 1 and not finished_by[0].endswith(f":{worker_pid}")  # re-ran in another process
    dask_cluster.wait_for_workers(2)  # the nanny restarted it for the tests after this one


def _can_hide_folders() -> bool:
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs none /mnt"], capture_output=True)
    return probe.returncode == 0


def test_workers_that_cannot_see_the_library_are_refused(workspace_copy: Path):
    if not _can_hide_folders():
        pytest.skip("needs unshare -m (root) to give a worker its own view of the filesystem")
    hidden = workspace_copy.parent
    # a worker on "another machine": its own mount namespace, where the workspace's folder is empty
    cluster = start_cluster(1, prefix=["unshare", "-m", "--propagation", "private", "sh", "-c",
                                       f'mount -t tmpfs none "{hidden}" && exec "$0" "$@"'])
    try:
        cluster.wait_for_workers(1)
        proc = mobius(workspace_copy, "render", "sushi-go", scheduler=cluster.address)
    finally:
        cluster.stop()
    assert proc.returncode == 3, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("mobius: error")]
    assert len(lines) == 1 and "cannot reach" in lines[0] and "local to this machine" in lines[0], proc.stderr
    assert not (workspace_copy / "out" / "sushi-go" / "preview.mp4").exists()
    assert temps(workspace_copy) == []
