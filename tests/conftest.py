"""Fixtures every test folder shares: a real sample workspace and the real `mobius` command."""

from __future__ import annotations

import compileall
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import mobius as mobius_package
from mobius.safety.lock import FileLock
from mobius.workspace.init import initialize

sys.path.insert(0, str(Path(__file__).parent))  # helper modules every folder shares (process_support)

MOBIUS = [sys.executable, "-m", "mobius"]


class MobiusRun:
    """Runs the real `mobius` console entry point in a subprocess."""

    def __init__(self, home: Path):
        self.home = home

    def __call__(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                 input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
        full_env.update(env or {})
        return subprocess.run([*MOBIUS, *args], cwd=cwd or self.home, env=full_env, input=input,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def json(self, *args: str, **kwargs) -> tuple[int, dict]:
        """Run with --json; returns (exit code, the one JSON object printed on stdout)."""
        proc = self(*args, "--json", **kwargs)
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one JSON line, got {proc.stdout!r} / stderr {proc.stderr!r}"
        return proc.returncode, json.loads(lines[0])


def pytest_configure(config: pytest.Config) -> None:
    """Byte-compile Mobius once before any test: the suite starts thousands of `mobius` subprocesses, and under
    PYTHONDONTWRITEBYTECODE=1 (set in our shells) each one compiled every Mobius module it imports from source
    again (0.03-0.15 s of CPU per process, measured). Only the controller compiles (the workers start after it);
    a folder that cannot be written is left as it is."""
    if not hasattr(config, "workerinput"):
        compileall.compile_dir(Path(mobius_package.__file__).parent, quiet=2)


def built_once_per_run(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> object:
    """`build(folder)` run once for the whole run, whichever xdist worker asks first; the others wait for it and get
    the JSON-able value it returned. For inputs tests only read (renders, encoded videos): a session fixture built
    per worker made each of them twice on 2 workers. `folder` is new and empty; a build that raises leaves no
    value behind, so the next worker that asks builds it again (and fails the same way, in its own tests)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the workers' basetemps share the run's
    with FileLock(root / f"shared-{name}.lock", timeout=3600, what=f"the shared test input {name!r}"):
        value_file = root / f"shared-{name}.json"
        if value_file.exists():
            return json.loads(value_file.read_text())
        folder = root / f"shared-{name}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        value = build(folder)
        value_file.write_text(json.dumps(value))
        return value


@pytest.fixture
def mobius(tmp_path: Path) -> MobiusRun:
    return MobiusRun(tmp_path)


@pytest.fixture(scope="session")
def _sample_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template") / "ws"
    initialize(root, sample=True)
    return root


@pytest.fixture
def sample_workspace(_sample_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of an initialized workspace with the sample library (and whatever init adds)."""
    root = tmp_path / "ws"
    shutil.copytree(_sample_template, root, symlinks=True)
    return root


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MOBIUS_* variable from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("MOBIUS_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def _moto_endpoint() -> Iterator[str]:
    """One moto S3 server per worker for the whole run (tests/media's `s3_server` sets the credentials and the
    bucket per test). moto keeps one in-memory S3 per process whichever server answers, so a server per test
    isolated nothing and cost a start and a 0.5 s stop each: tests work under prefixes of their own."""
    pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
