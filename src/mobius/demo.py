"""`mobius demo`: a sample workspace taken through everything Mobius does, end to end.

After `init --sample` the demo writes its migration as a plan (`demo-plan.yaml` in the workspace:
backup, golden update, media migration, validation) and runs it through the orchestrator
(`mobius migrate run`), so the demo shows the runbook the way a real migration runs: preflight
with evidence, each step verified, the post-migration validation, one record. Then it proves the
restore point (test-restore) and undoes the media step with the capability's own rollback.
The demo adds nothing of its own but the plan, the order and the summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobius.config import Workspace
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress

DEMO_GAME = "sushi-go"
PLAN_NAME = "demo-plan.yaml"
PLAN = f"""# The demo's migration (mobius migrate run {PLAN_NAME} --yes; see docs/migrate.md)
name: demo
type: combined
risk: low
oncall: "the demo"
steps:
  - backup: {{}}                          # the restore point: library, .env, database dump; verified
  - golden.update: {{games: [{DEMO_GAME}]}}  # pipeline test, render, regenerate its goldens
  - media.migrate: {{to: media-v2}}       # copy, re-read every byte, switch MOBIUS_LIBRARY_DIR
validate: [file_counts, checksums, db_check, golden_check_all]
probes: [library_listing]
probe_samples: 1
"""


@dataclass
class DemoStep:
    name: str
    seconds: float
    summary: str
    details: list[str] = field(default_factory=list)


@dataclass
class DemoReport:
    workspace: Path
    steps: list[DemoStep] = field(default_factory=list)
    plan: Path | None = None
    plan_text: str = ""
    migration: str | None = None

    @property
    def seconds(self) -> float:
        return sum(step.seconds for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "seconds": round(self.seconds, 3),
            "plan": self.plan,
            "plan_text": self.plan_text,
            "migration": self.migration,
            "steps": [{"name": s.name, "seconds": round(s.seconds, 3), "summary": s.summary, "details": s.details}
                      for s in self.steps],
        }


StepFunction = Callable[[Workspace, dict[str, Any], Progress], str]


def _init(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.workspace.init import initialize

    new_ws, result = initialize(ws.root, sample=True, progress=progress)
    state["ws"] = new_ws
    library = result.sample.get("library")
    return f"workspace ready; sample library {library}"


def _write_plan(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.ops.plan import load_plan
    from mobius.safety.atomic import atomic_write_text

    path = ws.root / PLAN_NAME
    atomic_write_text(path, PLAN)
    plan, _ = load_plan(path)  # the same validation `mobius migrate plan` does
    state["plan"] = path
    state["details"] = PLAN.rstrip().splitlines()
    steps = ", ".join(name for name, _ in plan.step_list())
    return f"{path.name}: {steps}; validate {', '.join(plan.validate_)}"


def _migrate_run(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.ops.orchestrator import Orchestrator
    from mobius.records import RecordStore

    orchestrator = Orchestrator(ws, progress=progress)
    try:
        outcome = orchestrator.run(state["plan"])
    finally:
        orchestrator.close()
    state["ws"] = ws.reload()  # the media step switched the library
    state["migration"] = outcome.id
    with RecordStore.of(ws) as store:
        op = store.get(outcome.id)
    details = []
    for step in op.steps:
        checks = step.evidence.get("checks") or []
        ok = sum(1 for c in checks if c.get("verdict") == "pass")
        skipped = sum(1 for c in checks if c.get("verdict") == "skipped")
        details.append(f"{step.name:<14} {step.status:<5} {step.duration_s or 0:6.2f}s  {ok} checks passed"
                       + (f", {skipped} skipped (not applicable)" if skipped else ""))
        if step.name == "backup" and step.undo:
            state["backup"] = Path(step.undo["archive"])
    state["details"] = details
    return f"migration {outcome.id} {outcome.status}: preflight, {len(op.steps) - 2} steps verified, validation"


def _backup_test_restore(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.backup import test_restore

    report = test_restore(state["backup"], progress=progress).raise_if_failed()
    return f"restored {report.files} files into a temporary folder, all match, cleaned up"


def _backup_list(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.backup import list_backups

    backups = list_backups(ws.backups)
    return f"{len(backups)} backup(s) in {ws.backups}"


def _media_rollback(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.media import rollback

    rollback(ws, progress=progress)
    state["ws"] = ws.reload()
    return f"library switched back to {Path(state['ws'].library).name}/ and verified against its manifest"


STEPS: list[tuple[str, StepFunction]] = [
    ("init --sample", _init),
    ("write the plan", _write_plan),
    ("migrate run", _migrate_run),
    ("backup test-restore", _backup_test_restore),
    ("backup list", _backup_list),
    ("media rollback", _media_rollback),
]


def run_demo(ws: Workspace, *, progress: Progress | None = None,
             on_step: Callable[[DemoStep], None] | None = None) -> DemoReport:
    """Run every step in order; the first failure stops the demo with its own error and exit code
    (a failing plan step or validation rolls the migration back first, as `migrate run` does)."""
    progress = progress or NoProgress()
    log = get_logger()
    report = DemoReport(workspace=ws.root)
    state: dict[str, Any] = {"ws": ws}
    for name, step in STEPS:
        started = time.monotonic()
        summary = step(state["ws"], state, progress)
        done = DemoStep(name, time.monotonic() - started, summary, state.pop("details", []))
        report.steps.append(done)
        log.info("demo.step", step=name, seconds=round(done.seconds, 3), summary=summary)
        if on_step:
            on_step(done)
    report.plan, report.plan_text, report.migration = state.get("plan"), PLAN, state.get("migration")
    return report
