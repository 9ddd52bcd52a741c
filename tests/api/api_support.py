"""Helpers for the service tests (conftest puts this folder on sys.path): a real `python -m mobius serve`
on a free loopback port, talked to over HTTP.

The workspace is the sample one (library, SQLite database at the newest migration) plus one verified
backup made by the real `mobius backup create`, so `/ready` passes before a test breaks something.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

TOKEN = "tok-" + "x7Qz3Lm9Vb2Kp8Rt"  # the API token the test servers use (grepped for in every output)


def _load_db_conftest():  # noqa: ANN202 - the PostgreSQL helpers of tests/db, loaded by path (importlib mode)
    spec = importlib.util.spec_from_file_location("mobius_tests_db_conftest",
                                                  Path(__file__).parent.parent / "db" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


db_conftest = _load_db_conftest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m mobius serve` in a subprocess; `.url`, `.get(path)`, `.stop()`; stderr kept for grepping."""

    def __init__(self, workspace: Path, *, workers: int = 1, env: dict[str, str] | None = None,
                 drain: float = 0.3, global_args: tuple[str, ...] = (), serve_args: tuple[str, ...] = ()):
        self.workspace = workspace
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MOBIUS_", "PROMETHEUS_"))}
        full_env.update({"MOBIUS_API_TOKEN": TOKEN, **(env or {})})
        self.stderr_path = workspace.parent / f"serve-{self.port}.err"
        self.stdout_path = workspace.parent / f"serve-{self.port}.out"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mobius", "--workspace", str(workspace), "--json", *global_args, "serve", "--port",
             str(self.port), "--workers", str(workers), "--drain-seconds", str(drain), *serve_args],
            env=full_env, stdout=self.stdout_path.open("wb"), stderr=self.stderr_path.open("wb"),
            stdin=subprocess.DEVNULL)
        self.client = httpx.Client(base_url=self.url, timeout=30)
        self._wait_up()

    def _wait_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mobius serve exited {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"mobius serve did not answer in {timeout} s: {self.output()}")

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def output(self) -> str:
        return self.stderr_path.read_text(errors="replace") + self.stdout_path.read_text(errors="replace")

    def stop(self) -> int:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def prepare_workspace(root: Path, template: Path, *, backup: bool = True, env: dict[str, str] | None = None) -> Path:
    """A copy of the sample workspace with a verified backup (made by the real CLI)."""
    shutil.copytree(template, root, symlinks=True)
    if backup:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
        done = subprocess.run([sys.executable, "-m", "mobius", "--workspace", str(root), "--json", "backup",
                               "create", "--archive", "--no-database"], env={**clean, **(env or {})},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["ok"]
    return root



def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
