"""Fixtures for the core tests: workspaces after the commands a help's `Needs first:` line names, built once."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def run_shell(line: str, workspace: Path, path: str,
              extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a shell command line in `workspace` with PATH `path`, no MOBIUS_* variable from the test's shell
    (but those of `extra`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    env["PATH"] = path
    env.update(extra or {})
    return subprocess.run(["bash", "-c", line], cwd=workspace, env=env, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)


def steps_of(line: str) -> tuple[str, ...]:
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
    """A fresh `init --sample` workspace after the commands a `Needs first:` line names, each state built once per
    worker and restored for every test that needs it (the help examples and the dry runs need the same ones).

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
        """The workspace (always at the same path) after each of `steps` ran in turn there and exited 0."""
        ws = self.home / "ws"
        if steps in self.saved:
            shutil.rmtree(self.home, ignore_errors=True)
            shutil.copytree(self.saved[steps], self.home, symlinks=True)
            return ws
        if steps:
            self.workspace(steps[:-1])
            done = run_shell(steps[-1], ws, self.path)
            assert done.returncode == 0, f"needed first: `{steps[-1]}` exited {done.returncode}: {done.stderr[-2000:]}"
        else:
            shutil.rmtree(self.home, ignore_errors=True)
            shutil.copytree(self.template, ws, symlinks=True)
        saved = self.root / f"state-{len(self.saved)}"
        shutil.copytree(self.home, saved, symlinks=True)
        self.saved[steps] = saved
        return ws

    def after(self, help_text: str) -> Path:
        """The workspace after the help's `Needs first:` line (at most one; none: the sample workspace)."""
        lines = [line.split("Needs first:", 1)[1].strip() for line in help_text.splitlines() if "Needs first:" in line]
        assert len(lines) <= 1, f"one `Needs first:` line at most: {lines}"
        return self.workspace(tuple(step for line in lines for step in steps_of(line)))


@pytest.fixture(scope="session")
def shell_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH whose `mobius` is this interpreter's Mobius, as a user's shell would find it."""
    bin_dir = tmp_path_factory.mktemp("bin")
    shim = bin_dir / "mobius"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mobius "$@"\n')
    shim.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(scope="session")
def needs_cache(_sample_template: Path, shell_path: str, tmp_path_factory: pytest.TempPathFactory) -> NeedsCache:
    return NeedsCache(tmp_path_factory.mktemp("needs"), _sample_template, shell_path)
