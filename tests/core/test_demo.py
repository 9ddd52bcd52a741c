"""`mobius demo` runs every step end to end on a fresh sample workspace.

It runs the example of `mobius demo --help` as written (plus `--json`, to read what it reports), so
tests/core/test_help_examples.py does not run that example a second time.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from mobius.cli.app import app
from mobius.demo import STEPS


def demo_example() -> str:
    """The `Example:` line of `mobius demo --help`."""
    help_text = typer.main.get_command(app).get_command(None, "demo").help or ""
    return next(line.split("Example:", 1)[1].strip() for line in help_text.splitlines() if "Example:" in line)


@pytest.mark.slow
def test_demo_runs_every_step_and_leaves_a_verified_workspace(mobius, tmp_path: Path) -> None:
    words = shlex.split(demo_example())
    assert words[:2] == ["mobius", "demo"] and len(words) == 3, words
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    proc = subprocess.run([sys.executable, "-m", "mobius", *words[1:], "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert [s["name"] for s in report["steps"]] == [name for name, _ in STEPS]
    root = (tmp_path / words[2]).resolve()
    assert report["workspace"] == str(root)
    # what the steps claim is on disk: a verifiable backup, goldens, the migrated copy, the switch undone
    archives = list((root / "backups").glob("mobius_library_*.tar.zst"))
    assert archives
    assert mobius("backup", "verify", str(archives[0]), "-w", str(root)).returncode == 0
    assert (root / "tests" / "golden" / "sushi-go" / "golden.json").is_file()
    assert (root / "media-v2").is_dir()
    code, config = mobius.json("config", "show", "-w", str(root))
    library = {row["name"]: row["value"] for row in config["settings"]}["MOBIUS_LIBRARY_DIR"]
    assert library == "uploads"
    assert mobius("golden", "check-all", "-w", str(root)).returncode == 0
    # the migration ran as a plan through the orchestrator: the plan is in the workspace, the record complete
    plan = root / "demo-plan.yaml"
    assert plan.read_text() == report["plan_text"] and report["plan"] == str(plan)
    assert mobius("migrate", "plan", str(plan), "-w", str(root)).returncode in (0, 2)  # valid plan (exit 1 = bad)
    code, status = mobius.json("migrate", "status", report["migration"], "-w", str(root))
    assert status["migration"]["status"] == "completed"
    assert [s["name"] for s in status["migration"]["steps"]] == ["preflight", "backup", "golden.update",
                                                                 "media.migrate", "validate"]
    code, history = mobius.json("history", "-w", str(root))
    children = {op["type"] for op in history["operations"] if op["parent"] == report["migration"]}
    assert children == {"backup.create", "golden.approve", "media.migrate"}
