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
from mobius.errors import VerificationError
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


def _db_status(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.db import check_database, database_status

    status = database_status(ws)
    report = check_database(ws)
    if not report.ok:
        raise VerificationError(f"demo: database check failed: {report.problems[0]}", details=report.problems)
    return (f"schema version {status.get('current_version')}, {len(status.get('pending', []))} pending; "
            f"{len(report.tables)} tables consistent")


def _pipeline_test(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.render import pipeline_test

    report = pipeline_test(ws, progress=progress)
    if not report.passed:
        raise VerificationError(f"demo: pipeline test failed: {report.failures()[0]}", details=report.failures())
    return f"{len(report.games)} game specs compiled, assets present, proxies rendered and probed"


def _golden_approve(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.golden import approve

    result = approve(ws, [DEMO_GAME], progress=progress)
    return f"rendered {DEMO_GAME} and wrote its goldens ({len(result.games)} game)"


def _golden_check(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.golden import check_all

    reports = check_all(ws, progress=progress)
    checks = [c for r in reports for c in r.checks]
    failed = [c for c in checks if not c.passed]
    if failed:
        raise VerificationError(f"demo: golden check failed: {failed[0]}")
    return f"{len(checks)} checks passed (frames SSIM, loudness, true peak, container)"


def _media_migrate(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.media import migrate

    target = ws.root / "media-v2"
    result = migrate(ws, str(target), confirm=lambda question: True, progress=progress)
    state["ws"] = ws.reload()
    return (f"{result.copied_files} files copied to {target.name}/ and re-read from disk, "
            f"backup taken, manifests equal, MOBIUS_LIBRARY_DIR switched")


def _media_rollback(ws: Workspace, state: dict[str, Any], progress: Progress) -> str:
    from mobius.media import rollback

    rollback(ws, progress=progress)
    state["ws"] = ws.reload()
    return f"library switched back to {Path(state['ws'].library).name}/ and verified against its manifest"


DEMO_GAME = "sushi-go"

STEPS: list[tuple[str, StepFunction]] = [
    ("init --sample", _init),
    ("db status + check", _db_status),
    ("backup create", _backup_create),
    ("backup verify", _backup_verify),
    ("backup test-restore", _backup_test_restore),
    ("backup list", _backup_list),
    ("pipeline test", _pipeline_test),
    ("golden approve", _golden_approve),
    ("golden check-all", _golden_check),
    ("media migrate", _media_migrate),
    ("media rollback", _media_rollback),
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
