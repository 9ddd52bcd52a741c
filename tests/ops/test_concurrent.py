"""Two migrations on one workspace at once: the second is refused before it changes or records anything,
and the first ends exactly as it would alone (no rollback of one ever undoes the other's work)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.ops.conftest import CHEAP_STEPS, last_migration, state, step_statuses, write_plan

from mobius.config import load_workspace
from mobius.records import RecordStore


def test_a_second_migration_is_refused_while_one_runs(mobius, ops_ws: Path, reference: dict) -> None:
    plan = write_plan(ops_ws, CHEAP_STEPS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    env["MOBIUS_FAULT"] = "slow@inside:media.migrate=2"
    first = subprocess.Popen([sys.executable, "-m", "mobius", "-w", str(ops_ws), "migrate", "run", str(plan), "--yes"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    started = False
    while not started and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        if (ops_ws / "state" / "operations.sqlite").exists():
            with RecordStore.of(load_workspace(ops_ws)) as store:
                started = bool(store.list(type="migrate.run"))
    assert started, "the first migration never started"
    second = mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes")
    out, err = first.communicate(timeout=180)
    assert second.returncode == 1, second.stderr
    assert "another mobius process is running a migration" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, err
    with RecordStore.of(load_workspace(ops_ws)) as store:
        assert len(store.list(type="migrate.run")) == 1  # the refused run recorded nothing
    assert step_statuses(last_migration(mobius, ops_ws)) == reference["steps"]
    assert state(ops_ws) == reference["state"]
