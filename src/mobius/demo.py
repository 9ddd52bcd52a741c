"""`mobius demo`: a sample workspace taken through everything Mobius does, end to end.

Each step is a plain call into a capability's public functions, in the runbook's order;
the demo adds nothing of its own but the order and the summary.
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


@dataclass
class DemoStep:
    name: str
    seconds: float
    summary: str


@dataclass
class DemoReport:
    workspace: Path
    steps: list[DemoStep] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(step.seconds for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "seconds": round(self.seconds, 3),
            "steps": [{"name": s.name, "seconds": round(s.seconds, 3), "summary": s.summary} for s in self.steps],
        }


StepFunction = Callable[[Workspace, dict[str, Any], Progress], str]


def _init(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.workspace.init import initialize

    new_ws, result = initialize(ws.root, sample=True, progress=progress)
    state["ws"] = new_ws
    library = result.sample.get("library")
    return f"workspace ready; sample library {library}"


def _backup_create(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.backup import create_backup

    result = create_backup(ws, progress=progress)
    state["backup"] = result.path
    return f"{result.path.name}: {result.files} files, {result.bytes} bytes, sha256 {result.sha256[:12]}"


def _backup_verify(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.backup import verify_archive

    report = verify_archive(state["backup"], progress=progress)
    return f"verified {report.files} members against the manifest and the sidecar"


def _backup_test_restore(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.backup import test_restore

    report = test_restore(state["backup"], progress=progress)
    return f"restored {report.files} files into a temporary folder, all match, cleaned up"


def _backup_list(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.backup import list_backups

    backups = list_backups(ws.backups)
    return f"{len(backups)} backup(s) in {ws.backups}"


STEPS: list[tuple[str, StepFunction]] = [
    ("init --sample", _init),
    ("backup create", _backup_create),
    ("backup verify", _backup_verify),
    ("backup test-restore", _backup_test_restore),
    ("backup list", _backup_list),
]


def run_demo(ws: Workspace, *, progress: Progress | None = None,
             on_step: Callable[[DemoStep], None] | None = None) -> DemoReport:
    """Run every step in order; the first failure stops the demo with its own error and exit code."""
    progress = progress or NoProgress()
    log = get_logger()
    report = DemoReport(workspace=ws.root)
    state: dict[str, Any] = {"ws": ws}
    for name, step in STEPS:
        started = time.monotonic()
        summary = step(state["ws"], state, progress)
        done = DemoStep(name, time.monotonic() - started, summary)
        report.steps.append(done)
        log.info("demo.step", step=name, seconds=round(done.seconds, 3), summary=summary)
        if on_step:
            on_step(done)
    return report
