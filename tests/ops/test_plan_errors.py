"""Bad plans: one clear line naming the file and line, exit 1, nothing recorded or changed."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.ops.conftest import CHEAP_STEPS, write_plan


@pytest.mark.parametrize(("steps", "extra", "expected"), [
    (CHEAP_STEPS, "risk_level: high\n", "plan.yaml:14: risk_level: Extra inputs are not permitted"),
    ("  - backup: {}\n  - media.migrat: {to: x}\n", "", "plan.yaml:8: steps.1: unknown step 'media.migrat'"),
    (CHEAP_STEPS, 'window: {start: "2020-01-01T23:00", end: "2020-01-02T01:00"}\n',
     "plan.yaml:14: window: the window ended in the past"),
    (CHEAP_STEPS, 'window: {start: "25:00", end: "02:00"}\n', "plan.yaml:14: window.start: '25:00' is not"),
    ("  - db.migrate: {to: three}\n", "",
     "plan.yaml:7: steps.0: db.migrate `to`: Input should be a valid integer (got \"three\")"),
    ('  - media.migrate: {to: "media-v2\\nMOBIUS_BACKUP_KEEP=1"}\n', "",
     "plan.yaml:7: steps.0: media.migrate `to`: MOBIUS_LIBRARY_DIR contains a control character"),
])
def test_bad_plan_is_one_line_exit_1(mobius, ops_ws: Path, steps: str, extra: str, expected: str) -> None:
    plan = write_plan(ops_ws, steps, extra=extra)
    for command in ("plan", "run"):
        proc = mobius("-w", str(ops_ws), "migrate", command, str(plan), "--yes" if command == "run" else "--force")
        assert proc.returncode == 1, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.startswith("mobius: error:")]
        assert len(lines) == 1 and expected in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (ops_ws / "media-v2").exists()


def test_a_step_is_found_by_its_name_loading_only_its_capability() -> None:
    """A one-step command imports the one step module it runs; every registered step is found by its name alone
    (the module map in mobius.ops.steps names the module that registers it)."""
    import subprocess
    import sys

    from mobius.ops.step import REGISTRY
    from mobius.ops.steps import MODULES, find_step, known_steps

    code = ("import sys; from mobius.ops.steps import find_step; assert find_step('env.promote') is not None; "
            "assert find_step('env.nosuch') is None and find_step('nosuch') is None; "
            "print(sorted(m for m in sys.modules if m.startswith('mobius.ops.steps.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['mobius.ops.steps.envs']"
    names = known_steps()
    assert {"backup", "config.set", "db.sync", "env.promote", "golden.update", "library.hash", "media.migrate"} <= set(
        names)
    for name in names:
        assert find_step(name) is REGISTRY[name]
        assert REGISTRY[name].__module__ == f"mobius.ops.steps.{MODULES[name.split('.', 1)[0]]}"


def test_missing_plan_file(mobius, ops_ws: Path) -> None:
    proc = mobius("-w", str(ops_ws), "migrate", "run", str(ops_ws / "nope.yaml"), "--yes")
    assert proc.returncode == 1
    assert "nope.yaml does not exist" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_plan_dry_run_prints_checks_and_changes_nothing(mobius, ops_ws: Path) -> None:
    plan = write_plan(ops_ws, CHEAP_STEPS)
    code, out = mobius.json("-w", str(ops_ws), "migrate", "plan", str(plan))
    assert code == 0, out
    names = {c["name"]: c["verdict"] for c in out["report"]["checks"]}
    assert names["disk.free"] == "pass" and names["db.pending"] == "pass"
    assert names["service.ready"] == "skipped"
    assert [p["step"] for p in out["plans"]] == ["backup", "media.migrate", "db.migrate"]
    assert not (ops_ws / "media-v2").exists()


def test_shared_options(mobius, ops_ws: Path) -> None:
    """-vvv is one global option (verbosity 3); `db rollback -y` works like --yes."""
    proc = mobius("-vvv", "version")
    assert proc.returncode == 0 and "mobius" in proc.stdout
    proc = mobius("-w", str(ops_ws), "db", "rollback", "-y")
    assert proc.returncode == 0, proc.stderr
    assert "is at version 2" in proc.stdout  # one step back from the built-in 3


def test_plan_with_a_failed_check_prints_one_json_object(mobius, ops_ws: Path) -> None:
    """`migrate plan --json` printed {"ok": true} before the error object when a check failed."""
    plan = write_plan(ops_ws, "  - media.migrate: {to: media-v2}\n")
    code, out = mobius.json("-w", str(ops_ws), "migrate", "plan", str(plan))
    assert code == 2 and out["ok"] is False and "backup.recent" in out["error"]
