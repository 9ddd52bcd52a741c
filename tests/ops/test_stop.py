"""`kill -TERM` of a running `mobius migrate run` (the runbook's "stop migration process").

The orchestrator finishes the step it is in, stops at the next safe point, records "stopped" and
exits 3 (docs/migrate.md); `migrate resume` then ends where an uninterrupted run ends, and
`migrate rollback` instead restores the exact prior state.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.ops.conftest import CHEAP_STEPS, last_migration, state, step_statuses, write_plan

from mobius.config import load_workspace
from mobius.records import RecordStore

EXIT_STOPPED = 3


def _run_and_term(root: Path) -> subprocess.CompletedProcess[str]:
    """Start `migrate run`, send SIGTERM while media.migrate sleeps inside its step (after its undo handle)."""
    plan = write_plan(root, CHEAP_STEPS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    env["MOBIUS_FAULT"] = "slow@inside:media.migrate=2"
    proc = subprocess.Popen([sys.executable, "-m", "mobius", "-w", str(root), "migrate", "run", str(plan), "--yes"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    inside = False
    while not inside and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        path = root / "state" / "operations.sqlite"
        if not path.exists():
            continue
        with RecordStore.of(load_workspace(root)) as store:
            ops = store.list(type="migrate.run")
            steps = store.get(ops[0].id).steps if ops else []
        inside = any(s.name == "media.migrate" and s.status == "running" and s.undo for s in steps)
    assert inside, "media.migrate never started"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_sigterm_stops_at_a_safe_point_and_resume_equals_uninterrupted(mobius, ops_ws: Path,
                                                                       reference: dict) -> None:
    proc = _run_and_term(ops_ws)
    assert proc.returncode == EXIT_STOPPED, proc.stderr
    assert "stop requested (SIGTERM)" in proc.stdout
    assert "stopped on request" in proc.stderr and "migrate resume" in proc.stderr
    migration = last_migration(mobius, ops_ws)
    assert migration["status"] == "stopped"
    assert "SIGTERM" in migration["error"]
    # the step it was in finished (a safe point is between steps); the next one never started
    assert step_statuses(migration) == [("preflight", "done"), ("backup", "done"), ("media.migrate", "done")]
    code, history = mobius.json("-w", str(ops_ws), "history", migration["id"])
    assert any(e["kind"] == "stopped" and e["data"]["reason"] == "SIGTERM" for e in history["events"])
    code, status = mobius.json("-w", str(ops_ws), "migrate", "status", migration["id"])
    assert status["orphaned"] is False  # stopped, not killed

    proc = mobius("-w", str(ops_ws), "migrate", "resume", migration["id"])
    assert proc.returncode == 0, proc.stderr
    after = last_migration(mobius, ops_ws)
    assert after["status"] == "completed"
    assert step_statuses(after) == reference["steps"]
    assert state(ops_ws) == reference["state"]


def test_sigterm_then_rollback_restores_the_prior_state(mobius, ops_ws: Path) -> None:
    before = state(ops_ws)
    proc = _run_and_term(ops_ws)
    assert proc.returncode == EXIT_STOPPED, proc.stderr
    migration = last_migration(mobius, ops_ws)
    assert migration["status"] == "stopped"
    assert state(ops_ws)["library"] == "<ws>/media-v2"  # the media step did switch the library

    proc = mobius("-w", str(ops_ws), "migrate", "rollback", migration["id"], "-y")
    assert proc.returncode == 0, proc.stderr
    assert last_migration(mobius, ops_ws)["status"] == "rolled-back"
    assert state(ops_ws) == before
