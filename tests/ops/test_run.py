"""`mobius migrate run` end to end, killed with -9 at named points and resumed, and failures that roll back.

The end state after kill + resume must equal an uninterrupted run's: library tree, database
schema and rows, .env bytes (workspace path normalized), goldens, and the record's step statuses.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.ops.conftest import CHEAP_STEPS, FAILING_MIGRATION, last_migration, state, step_statuses, write_plan


def test_cheap_plan_runs_and_records(mobius, ops_ws: Path, reference: dict) -> None:
    before = state(ops_ws)
    assert reference["steps"] == [("preflight", "done"), ("backup", "done"), ("media.migrate", "done"),
                                  ("db.migrate", "done"), ("validate", "done")]
    assert reference["state"]["library"] == "<ws>/media-v2"
    assert reference["state"]["library_digest"] == before["library_digest"]
    assert reference["state"]["db"] != before["db"]


@pytest.mark.parametrize("point", [pytest.param("preflight", marks=pytest.mark.slow),
                                   pytest.param("inside:backup", marks=pytest.mark.slow),
                                   "between", pytest.param("inside:media.migrate", marks=pytest.mark.slow),
                                   "inside:db.migrate", pytest.param("validation", marks=pytest.mark.slow)])
def test_kill_then_resume_equals_uninterrupted(mobius, ops_ws: Path, reference: dict, point: str) -> None:
    plan = write_plan(ops_ws, CHEAP_STEPS)
    proc = mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes", env={"MOBIUS_FAULT": f"kill@{point}"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    migration = last_migration(mobius, ops_ws)
    assert migration["status"] == "running"
    code, status = mobius.json("-w", str(ops_ws), "migrate", "status", migration["id"])
    assert status["orphaned"] is True
    proc = mobius("-w", str(ops_ws), "migrate", "resume", migration["id"])
    assert proc.returncode == 0, proc.stderr
    after = last_migration(mobius, ops_ws)
    assert after["status"] == "completed"
    assert step_statuses(after) == reference["steps"]
    assert state(ops_ws) == reference["state"]


def test_kill_mid_copy_resumes_through_the_media_journal(mobius, ops_ws: Path, reference: dict) -> None:
    plan = write_plan(ops_ws, CHEAP_STEPS)
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MOBIUS_")}
    env["MOBIUS_FAULT"] = "pause@copy:10"
    proc = subprocess.Popen([sys.executable, "-m", "mobius", "-w", str(ops_ws), "migrate", "run", str(plan), "--yes"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = ops_ws / "state" / "media-test-pause"
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    marker.unlink()
    migration = last_migration(mobius, ops_ws)
    assert ("media.migrate", "running") in step_statuses(migration)
    proc2 = mobius("-w", str(ops_ws), "migrate", "resume", migration["id"])
    assert proc2.returncode == 0, proc2.stderr
    assert "resuming" in proc2.stdout
    assert state(ops_ws) == reference["state"]
    assert step_statuses(last_migration(mobius, ops_ws)) == reference["steps"]


def _assert_rolled_back(mobius, root: Path, before: dict, why: str) -> dict:
    migration = last_migration(mobius, root)
    assert migration["status"] == "rolled-back", migration
    assert why in (migration["error"] or "")
    assert state(root) == before
    report = mobius("-w", str(root), "migrate", "report", migration["id"])
    assert report.returncode == 0 and why in report.stdout and "rollback.done" in report.stdout
    return migration


def test_step_failing_half_way_rolls_back_to_the_exact_prior_state(mobius, ops_ws: Path) -> None:
    (ops_ws / "migrations" / "0005_broken.sql").write_text(FAILING_MIGRATION)
    before = state(ops_ws)
    plan = write_plan(ops_ws, CHEAP_STEPS.replace("{to: 4}", "{to: 5}"))
    proc = mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes")
    assert proc.returncode == 2, proc.stderr
    assert "rolled back" in proc.stderr
    _assert_rolled_back(mobius, ops_ws, before, "step db.migrate failed")


def test_kill_during_rollback_then_resume_finishes_it(mobius, ops_ws: Path) -> None:
    (ops_ws / "migrations" / "0005_broken.sql").write_text(FAILING_MIGRATION)
    before = state(ops_ws)
    plan = write_plan(ops_ws, CHEAP_STEPS.replace("{to: 4}", "{to: 5}"))
    proc = mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes",
                  env={"MOBIUS_FAULT": "kill@rollback:media.migrate"})
    assert proc.returncode == -signal.SIGKILL
    migration = last_migration(mobius, ops_ws)
    assert migration["status"] == "rolling-back"
    proc = mobius("-w", str(ops_ws), "migrate", "resume", migration["id"])
    assert proc.returncode == 2 and "rolled back" in proc.stderr, proc.stderr
    _assert_rolled_back(mobius, ops_ws, before, "step db.migrate failed")


def test_failed_validation_rolls_back(mobius, ops_ws: Path) -> None:
    before = state(ops_ws)
    plan = write_plan(ops_ws, CHEAP_STEPS)
    proc = mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes",
                  env={"MOBIUS_FAULT": "fail@validation:checksums"})
    assert proc.returncode == 2, proc.stderr
    _assert_rolled_back(mobius, ops_ws, before, "validation failed: checksums")


def test_sustained_error_rate_rolls_back(mobius, ops_ws: Path) -> None:
    before = state(ops_ws)
    plan = write_plan(ops_ws, CHEAP_STEPS, extra="")
    plan.write_text(plan.read_text().replace("monitors: {sample_every: 0.1s}",
                                             "monitors: {sample_every: 0.05s, error_rate_rollback: "
                                             "{above: 10%, for: 0.3s}}"))
    proc = mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes",
                  env={"MOBIUS_FAULT": "error-rate@media.migrate=0.5,slow-copy@chunk=60"})
    assert proc.returncode == 2, proc.stderr
    migration = _assert_rolled_back(mobius, ops_ws, before, "error rate 50% above 10%")
    code, history = mobius.json("-w", str(ops_ws), "history", migration["id"])
    kinds = [e["kind"] for e in history["events"]]
    assert kinds.index("monitor.error_rate.alert") < kinds.index("monitor.error_rate.pending") \
        < kinds.index("monitor.error_rate.rollback") < kinds.index("rollback.done")
    pending = next(e for e in history["events"] if e["kind"] == "monitor.error_rate.pending")
    assert pending["data"]["value"] == 0.5 and pending["data"]["threshold"] == 0.1


def test_disk_full_stops_cleanly_and_rollback_restores(mobius, ops_ws: Path) -> None:
    before = state(ops_ws)
    plan = write_plan(ops_ws, CHEAP_STEPS)
    proc = mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes",
                  env={"MOBIUS_FAULT": "disk-full@db.migrate"})
    assert proc.returncode == 5, proc.stderr
    assert "migrate resume" in proc.stderr
    migration = last_migration(mobius, ops_ws)
    assert migration["status"] == "stopped"
    proc = mobius("-w", str(ops_ws), "migrate", "rollback", migration["id"], "-y")
    assert proc.returncode == 0, proc.stderr
    assert state(ops_ws) == before
    code, history = mobius.json("-w", str(ops_ws), "history", migration["id"])
    disk = [e for e in history["events"] if e["kind"] == "monitor.disk.stop" or e["kind"] == "stopped"]
    assert disk, history["events"]


def test_history_lists_the_migration(mobius, ops_ws: Path) -> None:
    plan = write_plan(ops_ws, "  - backup: {}\n")
    assert mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes").returncode == 0
    code, out = mobius.json("-w", str(ops_ws), "history")
    types = [op["type"] for op in out["operations"]]
    assert "migrate.run" in types
    text = json.dumps(out)
    assert "completed" in text
