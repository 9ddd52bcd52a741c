"""Every command's `--help` example runs as written on a fresh `mobius init --sample` workspace.

A help text holds one or more `Example:` lines (each a shell command line, run in the workspace) and at
most one `Needs first:` line naming the commands the example needs before it (`mobius render sushi-go`
before `golden check`). This test walks the real command tree, so a new command without a runnable
example fails here, and an example cannot rot when the command changes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import typer
from tests.core.conftest import NeedsCache, run_shell

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


def _s3(request: pytest.FixtureRequest) -> dict[str, str]:
    """For an example that names an s3:// URL: the suite's moto server as its endpoint, with a bucket `media`."""
    import boto3

    endpoint = request.getfixturevalue("_moto_endpoint")
    env = {"MOBIUS_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="media")
    return env


@pytest.mark.slow
@pytest.mark.parametrize("name,help_text", RUN_HERE, ids=[name for name, _ in RUN_HERE])
def test_help_example_runs_as_written(name: str, help_text: str, needs_cache: NeedsCache, shell_path: str,
                                      request: pytest.FixtureRequest) -> None:
    examples = _lines_after(EXAMPLE, help_text)
    if not examples:
        pytest.fail(f"`mobius {name} --help` has no example")
    # a fresh `init --sample` workspace after the needed commands (each exited 0), restored from a per-worker cache
    workspace = needs_cache.after(help_text)
    for line in examples:
        if name in SERVES:
            _serve_answers_health(line, workspace, shell_path)
            continue
        done = run_shell(line, workspace, shell_path, _s3(request) if "s3://" in line.split("#", 1)[0] else None)
        expected = _expected_exit(line)
        assert done.returncode == expected, f"`{line}` exited {done.returncode}: {done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr
