"""Render tests share one sample workspace and one render of sushi-go per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mobius.workspace.init import initialize


def run_mobius(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "mobius", *args], capture_output=True, text=True, env=full_env,
                          stdin=subprocess.DEVNULL, timeout=600)


@pytest.fixture(scope="session")
def render_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("render") / "ws"
    initialize(root, sample=True)
    return root


@pytest.fixture(scope="session")
def rendered(render_workspace: Path) -> Path:
    """sushi-go rendered once through the real CLI."""
    proc = run_mobius("render", "sushi-go", "-w", str(render_workspace))
    assert proc.returncode == 0, proc.stderr
    return render_workspace / "out" / "sushi-go" / "preview.mp4"
