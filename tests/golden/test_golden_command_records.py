"""`golden restore` runs as a one-step plan: its record is the command's, and `mobius migrate rollback ID`
puts back the goldens it replaced (the tree digest of before), with nothing but the record."""

from __future__ import annotations

import json
from pathlib import Path

from mobius.ops.digests import tree_digest

from .conftest import GAME, run_mobius


def test_golden_restore_is_undone_from_its_record(workspace: Path) -> None:
    golden = workspace / "tests" / "golden"
    proc = run_mobius("golden", "backup", "-w", str(workspace), "--json")
    assert proc.returncode == 0, proc.stderr
    archive = json.loads(proc.stdout)["archive"]
    (golden / GAME / "golden.json").write_text("{}")
    edited = tree_digest(golden)
    proc = run_mobius("golden", "restore", archive, "-w", str(workspace), "--json")
    assert proc.returncode == 0, proc.stderr
    assert tree_digest(golden) != edited
    ops = json.loads(run_mobius("history", "--json", "-w", str(workspace)).stdout)["operations"]
    restored = next(op for op in ops if not op["parent"])
    assert (restored["type"], restored["status"]) == ("golden.restore", "completed")
    assert not [op for op in ops if op["parent"] == restored["id"] and op["type"] == "golden.restore"]
    proc = run_mobius("migrate", "rollback", restored["id"], "--yes", "-w", str(workspace))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert tree_digest(golden) == edited
