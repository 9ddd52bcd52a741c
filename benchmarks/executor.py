"""Benchmark: per-item work through mobius.executor, serial vs local pool vs Dask (issue 14).

Two workloads, each on four executors:
  renders   N games (default 12: the 3 sample specs under 4 names each), one item per game,
            ~4-7 s of CPU each (x264 with 2 threads, NumPy compositing)
  hashing   100,000 small files (1-4 KiB) with safety.hashing.sha256_file, in batches (hash_batch)
Executors:
  serial          LocalExecutor(workers=1): inline, no pool
  local pool      LocalExecutor: 2 processes (renders) / 2 processes and 4 threads (hashing)
  dask local      DaskExecutor without a scheduler: a LocalCluster started for the run (start counted apart)
  dask 2 procs    a scheduler and two `dask worker` processes started as separate programs (start not counted)
For each: wall time, and overhead per item = (wall x workers - sum of item compute) / items, i.e. the
time a worker spent not computing an item, per item. Also the round trip of 2,000 no-op tasks (the
per-task overhead) and, on the local Dask cluster, hashing at several batch sizes.

    python benchmarks/executor.py                  # 12 games + 100,000 files (several minutes on 2 cores)
    python benchmarks/executor.py --games 4 --files 20000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from mobius.config import load_workspace
from mobius.executor import Item, batches, hash_batch, run_items
from mobius.executor.cluster import DaskExecutor
from mobius.executor.local import LocalExecutor
from mobius.render import render_task
from mobius.workspace.init import initialize

SAMPLES = ("sushi-go", "love-letter", "hanamikoji")


def noop(ws, value):
    return value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def separate_cluster(workers: int) -> Iterator[str]:
    """A scheduler and `workers` worker programs on 127.0.0.1, as an operator would start them."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOBIUS_", "DASK_"))}
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "stdin": subprocess.DEVNULL}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], **quiet)]
    address = f"tcp://127.0.0.1:{port}"
    from mobius.executor.cluster import WORKER_MALLOC

    worker_env = {**env, "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": repr(WORKER_MALLOC)}
    procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                "--host", "127.0.0.1", "--no-dashboard"], **{**quiet, "env": worker_env})
              for _ in range(workers)]
    try:
        from distributed import Client

        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def executors(ws, workers: int, *, processes: bool) -> Iterator[tuple[str, object, float]]:
    """(label, executor, start seconds) for each executor, each closed after its turn."""
    yield "serial", LocalExecutor(workers=1, processes=processes), 0.0
    started = time.perf_counter()
    local = LocalExecutor(workers=workers, processes=processes)
    yield f"local pool ({local.name.split('(')[1][:-1]})", local, time.perf_counter() - started
    local.close()
    started = time.perf_counter()
    dask_local = DaskExecutor(workers=workers, processes=processes)
    yield "dask local cluster", dask_local, time.perf_counter() - started
    dask_local.close()
    with separate_cluster(workers) as address:
        remote = DaskExecutor(scheduler=address)
        yield "dask 2 worker programs", remote, 0.0
        remote.close()


def report(label: str, run, workers: int, start: float, items: int) -> None:
    compute = sum(o.seconds for o in run.outcomes)
    width = 1 if label == "serial" else workers
    overhead = (run.seconds * width - compute) / items
    failed = f"  FAILED {len(run.failed)}" if run.failed else ""
    print(f"  {label:<28} wall {run.seconds:7.2f} s  (+ start {start:4.1f} s)  compute {compute:7.2f} s  "
          f"overhead/item {overhead * 1000:8.1f} ms{failed}", flush=True)


def bench_noop(ws, workers: int) -> None:
    print("\n== per-task overhead: 2,000 no-op tasks")
    items = [Item(f"noop-{n}", n) for n in range(2000)]
    for label, executor, _start in executors(ws, workers, processes=True):
        if label == "serial":
            continue
        run = run_items(ws, "noop", noop, items, executor=executor)
        print(f"  {label:<28} {run.seconds:6.2f} s  = {run.seconds / len(items) * 1000:6.2f} ms a task (wall)",
              flush=True)


def bench_renders(ws, games: list[str], workers: int) -> dict[str, str]:
    print(f"\n== renders: {len(games)} games, one item per game")
    items = [Item(g, (g, None)) for g in games]
    digests: dict[str, str] = {}
    from mobius.safety.hashing import sha256_file

    for label, executor, start in executors(ws, workers, processes=True):
        shutil.rmtree(ws.out, ignore_errors=True)
        ws.out.mkdir()
        run = run_items(ws, "render", render_task, items, executor=executor, reach=[ws.out, ws.games])
        report(label, run, workers, start, len(items))
        sums = ",".join(sha256_file(ws.out / g / "preview.mp4")[:16] for g in games)
        digests[label] = sums
    same = len(set(digests.values())) == 1
    print(f"  rendered bytes identical across executors: {same}")
    if not same:
        for label, sums in digests.items():
            print(f"    {label:<28} {sums}")
    return digests


def make_files(root: Path, count: int) -> list[str]:
    rng = random.Random(14)
    paths = []
    for n in range(count):
        folder = root / f"{n // 1000:03}"
        if n % 1000 == 0:
            folder.mkdir(parents=True)
        path = folder / f"{n:06}.bin"
        path.write_bytes(rng.randbytes(rng.randint(1024, 4096)))
        paths.append(str(path))
    return paths


def bench_hashing(ws, paths: list[str], workers: int, batch: int) -> None:
    print(f"\n== hashing: {len(paths):,} files in batches of {batch} ({-(-len(paths) // batch)} items)")
    started = time.perf_counter()
    import hashlib

    for path in paths:
        with open(path, "rb") as handle:
            hashlib.sha256(handle.read()).hexdigest()
    print(f"  {'(plain hashlib, read whole)':<28} wall {time.perf_counter() - started:7.2f} s", flush=True)
    items = [Item(f"batch-{n}", chunk) for n, chunk in enumerate(batches(paths, batch))]
    expected = None
    for label, executor, start in executors(ws, workers, processes=True):
        run = run_items(ws, "hash", hash_batch, items, executor=executor, reach=[Path(paths[0]).parent.parent])
        report(label, run, workers, start, len(paths))
        digests = [d for chunk in run.values() for _, d in chunk]
        expected = expected or digests
        assert digests == expected, f"{label}: digests differ"
        if label.startswith("local pool"):
            threads = LocalExecutor(workers=4, processes=False)
            run = run_items(ws, "hash", hash_batch, items, executor=threads)
            report("local pool (4 threads)", run, 4, 0.0, len(paths))
            assert [d for chunk in run.values() for _, d in chunk] == expected
    print("  digests identical across executors: True")
    dask_local = DaskExecutor(workers=workers)
    try:
        for size in (100, 500, 2000):
            chunked = [Item(f"b{size}-{n}", chunk) for n, chunk in enumerate(batches(paths, size))]
            run = run_items(ws, "hash", hash_batch, chunked, executor=dask_local)
            report(f"dask local, batch {size}", run, workers, 0.0, len(paths))
    finally:
        dask_local.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", type=int, default=12, help="games to render (default 12)")
    parser.add_argument("--files", type=int, default=100_000, help="small files to hash (default 100,000)")
    parser.add_argument("--batch", type=int, default=500, help="files a hashing task (default 500)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip", choices=("renders", "hashing", "noop"), action="append", default=[])
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="mobius-bench-executor-") as tmp:
        root = Path(tmp) / "ws"
        initialize(root, sample=True)
        games = []
        for n in range(args.games):
            base = SAMPLES[n % 3]
            name = base if n < 3 else f"{base}-{n // 3 + 1}"
            if name != base:
                text = (root / "games" / f"{base}.yaml").read_text().replace(f"slug: {base}", f"slug: {name}")
                (root / "games" / f"{name}.yaml").write_text(text)
            games.append(name)
        ws = load_workspace(root)
        if "noop" not in args.skip:
            bench_noop(ws, args.workers)
        if "renders" not in args.skip:
            bench_renders(ws, games, args.workers)
        if "hashing" not in args.skip:
            started = time.perf_counter()
            paths = make_files(Path(tmp) / "files", args.files)
            print(f"\n(made {len(paths):,} files in {time.perf_counter() - started:.1f} s)")
            bench_hashing(ws, paths, args.workers, args.batch)


if __name__ == "__main__":
    main()
