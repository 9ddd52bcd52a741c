"""Benchmark: `mobius serve` under bounded load on loopback, one worker and two.

For each of /health, /ready and /api/games: N requests (default 20,000) at C concurrent keep-alive
connections (default 50), from a small asyncio HTTP/1.1 client (raw sockets: httpx's own overhead
would be the bottleneck on a 2-core machine, not the server). Reports throughput, p50 and p99
latency and errors (any status other than 200, or a broken connection), and what /ready costs
against /health. The server runs on the sample workspace (SQLite) with one verified backup.

    python benchmarks/service.py                       # 20,000 requests at 50, workers 1 and 2
    python benchmarks/service.py --requests 2000       # quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PATHS = ("/health", "/ready", "/api/games")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _connection(port: int, path: str, count: list[int], latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    try:
        while count[0] > 0:
            count[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(str(status))
    except (OSError, asyncio.IncompleteReadError) as exc:
        errors.append(type(exc).__name__)
    finally:
        writer.close()


async def load(port: int, path: str, requests: int, concurrency: int) -> dict[str, float]:
    count, latencies, errors = [requests], [], []
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, path, count, latencies, errors) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {"requests": len(latencies), "errors": len(errors), "seconds": elapsed, "rps": len(latencies) / elapsed,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


def serve(ws: Path, port: int, workers: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOBIUS_", "PROMETHEUS_"))}
    proc = subprocess.Popen([sys.executable, "-m", "mobius", "--workspace", str(ws), "serve", "--port", str(port),
                             "--workers", str(workers), "--drain-seconds", "0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                time.sleep(1.0 if workers > 1 else 0.2)  # let every worker finish starting
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from mobius.workspace.init import initialize

    tmp = Path(tempfile.mkdtemp(prefix="mobius-bench-service-"))
    results = []
    try:
        ws = tmp / "ws"
        initialize(ws, sample=True)
        subprocess.run([sys.executable, "-m", "mobius", "--workspace", str(ws), "backup", "create", "--no-database"],
                       check=True, capture_output=True)
        for workers in (int(w) for w in args.workers.split(",")):
            port = _free_port()
            proc = serve(ws, port, workers)
            try:
                for path in PATHS:
                    asyncio.run(load(port, path, min(500, args.requests), args.concurrency))  # warm-up
                    row = asyncio.run(load(port, path, args.requests, args.concurrency))
                    row.update(workers=workers, path=path)
                    results.append(row)
                    print(f"workers={workers} {path:<11} {row['requests']:>6} req  {row['rps']:7.0f} req/s  "
                          f"p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:7.2f} ms  errors {row['errors']}",
                          flush=True)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
        for workers in sorted({r["workers"] for r in results}):
            by = {r["path"]: r for r in results if r["workers"] == workers}
            if "/health" in by and "/ready" in by:
                print(f"workers={workers} /ready costs {by['/ready']['p50_ms'] / by['/health']['p50_ms']:.1f}x "
                      f"/health at p50 ({by['/ready']['p50_ms'] - by['/health']['p50_ms']:.2f} ms more), "
                      f"{by['/health']['rps'] / by['/ready']['rps']:.1f}x fewer requests/s")
        if args.json:
            print(json.dumps(results))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
