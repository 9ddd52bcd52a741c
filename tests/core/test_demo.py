"""`mobius demo` runs every step end to end on a fresh sample workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobius.demo import STEPS


@pytest.mark.slow
def test_demo_runs_every_step_and_leaves_a_verified_workspace(mobius, tmp_path: Path) -> None:
    code, report = mobius.json("demo", str(tmp_path / "demo"))
    assert code == 0, report
    assert [s["name"] for s in report["steps"]] == [name for name, _ in STEPS]
    root = tmp_path / "demo"
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
