"""The migrate plan's `golden.update` step carries the format-2 files: it writes signatures.npz, verify
proves it, and rollback puts the older golden back byte for byte."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from .conftest import GAME, run_mobius

pytestmark = pytest.mark.slow

PLAN = """name: golden-only
type: golden
risk: low
oncall: Ada Lovelace
approver: Grace Hopper
steps:
  - backup: {}
  - golden.update: {games: [sushi-go]}
validate: []
probes: []
monitors: {sample_every: 0.1s}
"""


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_golden_update_step_writes_signatures_and_its_rollback_restores_the_old_golden(workspace: Path):
    folder = workspace / "tests" / "golden" / GAME
    (folder / "signatures.npz").unlink()  # an older (format 1) golden before the plan
    meta = json.loads((folder / "golden.json").read_text())
    meta["format"] = 1
    (folder / "golden.json").write_text(json.dumps(meta))
    before = _digest(workspace / "tests" / "golden")
    plan = workspace / "plan.yaml"
    plan.write_text(PLAN)
    proc = run_mobius("-w", str(workspace), "migrate", "run", str(plan), "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    op_id = proc.stdout.splitlines()[0].split()[1].rstrip(":")
    assert (folder / "signatures.npz").is_file()
    assert json.loads((folder / "golden.json").read_text())["format"] == 2
    assert "golden.signatures.sushi-go" in run_mobius("-w", str(workspace), "migrate", "report", op_id).stdout

    proc = run_mobius("-w", str(workspace), "migrate", "rollback", op_id, "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _digest(workspace / "tests" / "golden") == before
