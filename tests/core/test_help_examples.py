"""Every command's `--help` example runs as written on a fresh `mobius init --sample` workspace.

A help text holds one or more `Example:` lines (each a shell command line, run in the workspace) and at
most one `Needs first:` line naming the commands the example needs before it (`mobius render sushi-go`
before `golden check`). This test walks the real command tree, so a new command without a runnable
example fails here, and an example cannot rot when the command changes.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import typer

from mobius.cli.app import app

EXAMPLE = "Example:"
NEEDS = "Needs first:"

# Commands that serve until stopped: the example passes when the service answers /health.
SERVES = {"serve"}
# Examples that a test of their own runs as written (and checks further): not run here a second time.
RUN_ELSEWHERE = {"demo": "tests/core/test_demo.py"}


def _leaf_commands() -> list[tuple[str, str]]:
    """(command path, help text) for every command a user can run."""
    found: list[tuple[str, str]] = []

    def walk(command, path: list[str]) -> None:
        if hasattr(command, "list_commands"):  # the group's own API: the root imports its commands lazily
            for name in sorted(command.list_commands(None)):
                walk(command.get_command(None, name), [*path, name])
        else:
            found.append((" ".join(path), command.help or ""))

    walk(typer.main.get_command(app), [])
    return found


def _lines_after(marker: str, text: str) -> list[str]:
    return [line.split(marker, 1)[1].strip() for line in text.splitlines() if marker in line]


def _expected_exit(line: str) -> int:
    """0, or the code the example states in a trailing shell comment (`# exit 2: they differ`)."""
    match = re.search(r"#\s*exit (\d+)", line)
    return int(match.group(1)) if match else 0


COMMANDS = _leaf_commands()


@pytest.fixture(scope="module")
def shell_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH whose `mobius` is this interpreter's Mobius, as a user's shell would find it."""
    bin_dir = tmp_path_factory.mktemp("bin")
    shim = bin_dir / "mobius"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mobius "$@"\n')
    shim.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


def _run(line: str, workspace: Path, path: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    env["PATH"] = path
    return subprocess.run(["bash", "-c", line], cwd=workspace, env=env, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)


def _steps(line: str) -> tuple[str, ...]:
    """The commands of a `cmd1 && cmd2` line, each quoted back for the shell; the line whole if it holds any
    other shell operator (a pipe, a redirection), where running its parts apart would mean something else."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    parts: list[list[str]] = [[]]
    for token in lexer:
        if token == "&&":
            parts.append([])
        elif token and set(token) <= set(lexer.punctuation_chars):
            return (line,)
        else:
            parts[-1].append(token)
    return tuple(shlex.join(part) for part in parts)


class NeedsCache:
    """The workspace state after each `Needs first:` command, built once per worker and restored per test.

    Every state is built and restored at one fixed path (a folder holding `ws` and whatever a command writes
    beside it, such as `../offsite-backups`; a worker runs one test at a time), so the absolute paths a workspace
    stores (operation records, journals, undo handles) name the same place in every copy. Each prefix of a
    `cmd1 && cmd2` line is a state too: `golden approve sushi-go && golden backup` starts from the state that
    `golden approve sushi-go` left.
    """

    def __init__(self, root: Path, template: Path, path: str):
        self.root, self.template, self.path = root, template, path
        self.home = root / "home"
        self.saved: dict[tuple[str, ...], Path] = {}

    def workspace(self, steps: tuple[str, ...]) -> Path:
        """A fresh workspace (always at the same path) after each of `steps` ran in turn and exited 0."""
        ws = self.home / "ws"
        if steps in self.saved:
            shutil.rmtree(self.home, ignore_errors=True)
            shutil.copytree(self.saved[steps], self.home, symlinks=True)
            return ws
        if steps:
            self.workspace(steps[:-1])
            done = _run(steps[-1], ws, self.path)
            assert done.returncode == 0, f"needed first: `{steps[-1]}` exited {done.returncode}: {done.stderr[-2000:]}"
        else:
            shutil.rmtree(self.home, ignore_errors=True)
            shutil.copytree(self.template, ws, symlinks=True)
        saved = self.root / f"state-{len(self.saved)}"
        shutil.copytree(self.home, saved, symlinks=True)
        self.saved[steps] = saved
        return ws


@pytest.fixture(scope="module")
def needs_cache(_sample_template: Path, shell_path: str, tmp_path_factory: pytest.TempPathFactory) -> NeedsCache:
    return NeedsCache(tmp_path_factory.mktemp("needs"), _sample_template, shell_path)


def _serve_answers_health(line: str, workspace: Path, path: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    env["PATH"] = path
    proc = subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=workspace, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    port = line.split("--port", 1)[1].split()[0] if "--port" in line else "5001"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"`{line}` exited {proc.returncode}: {proc.stderr.read()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    assert answer.status == 200
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_every_command_has_an_example() -> None:
    missing = [name for name, help_text in COMMANDS if not _lines_after(EXAMPLE, help_text)]
    assert not missing, f"commands without an `Example:` line in their help: {missing}"


RUN_HERE = [(name, text) for name, text in COMMANDS if name not in RUN_ELSEWHERE]


@pytest.mark.slow
@pytest.mark.parametrize("name,help_text", RUN_HERE, ids=[name for name, _ in RUN_HERE])
def test_help_example_runs_as_written(name: str, help_text: str, needs_cache: NeedsCache, shell_path: str) -> None:
    examples = _lines_after(EXAMPLE, help_text)
    if not examples:
        pytest.fail(f"`mobius {name} --help` has no example")
    needs = _lines_after(NEEDS, help_text)
    assert len(needs) <= 1, f"`mobius {name} --help`: one `{NEEDS}` line at most"
    # a fresh `init --sample` workspace after the needed commands (each `&&` part exits 0), cached per worker
    workspace = needs_cache.workspace(tuple(step for line in needs for step in _steps(line)))
    for line in examples:
        if name in SERVES:
            _serve_answers_health(line, workspace, shell_path)
            continue
        done = _run(line, workspace, shell_path)
        expected = _expected_exit(line)
        assert done.returncode == expected, f"`{line}` exited {done.returncode}: {done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr
