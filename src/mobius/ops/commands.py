"""deploy, env promote and env rollback as one-step plans on the migration runner.

The capability (mobius.envs) says what each phase does; here each command is run as its step
(ops.steps.envs) by the Orchestrator, so it has a record of its own type, resumes after kill -9
(`mobius migrate resume ID`) and is undone from the record (`mobius migrate rollback ID`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mobius.config import Workspace, load_workspace
from mobius.envs import releases
from mobius.envs.deploy import DeployResult, dry_run_deploy
from mobius.envs.places import check_layout
from mobius.envs.promote import PromoteResult, prepare_promote
from mobius.envs.rollback import RollbackResult, prepare_rollback
from mobius.ops.orchestrator import Orchestrator, Outcome
from mobius.phases import Described, Phases
from mobius.results import to_jsonable


def _run(ws: Workspace, say: Callable[[str], None], progress: Any, *args: Any, **kwargs: Any) -> tuple[Outcome, Any]:
    runner = Orchestrator(ws, say=say, progress=progress)
    try:
        outcome = runner.run_command(*args, **kwargs)
        preflight = next((s for s in runner.store.get(outcome.id).steps if s.idx == 0), None)
    finally:
        runner.close()
    return outcome, preflight


def _handle(outcome: Outcome) -> dict[str, Any]:
    return next((s["undo"] for s in outcome.steps if s["idx"] == 1), None) or {}


def deploy(ws: Workspace, *, dry_run: bool = False, backup: bool = True, force: bool = False,
           say: Callable[[str], None] = lambda line: None, progress: Any = None) -> DeployResult:
    """`mobius deploy`. A failed phase leaves the record `failed` with its backup, as `mobius rollback` expects."""
    if dry_run:
        return dry_run_deploy(ws, backup=backup, say=say, progress=progress)
    check_layout(ws)
    outcome, preflight = _run(ws, say, progress, releases.DEPLOY, "env.deploy", {"force": force, "backup": backup},
                              {"backup": backup}, on_failure="stop", force=force)
    handle = _handle(outcome)
    result = DeployResult(ws.environment, False, release=outcome.id, backup=handle.get("backup"))
    result.preflight = {"checks": to_jsonable(preflight.evidence.get("checks", [])) if preflight else []}
    result.changed = (handle.get("result") or {}).get("changed") or {}
    result.health = handle.get("health")
    result.steps = Phases(Described(), handle).lines()
    releases.protect_rollback_backup(ws)
    return result


def promote(root: Path, source: str, target: str, *, dry_run: bool = False,
            confirm: Callable[[str], bool] | None = None, say: Callable[[str], None] = lambda line: None,
            progress: Any = None) -> PromoteResult:
    """`mobius env promote`. Any failure, or Ctrl-C (then exit 130), restores the target from its backup."""
    result = prepare_promote(root, source, target, dry_run=dry_run, confirm=confirm, say=say)
    if dry_run:
        return result
    outcome, _ = _run(load_workspace(root), say, progress, "env.promote", "env.promote", {"from": source, "to": target},
                      {"from": source, "to": target, "plan": result.plan}, on_interrupt="rollback")
    handle = _handle(outcome)
    result.operation, result.backup = outcome.id, handle.get("backup")
    result.steps = Phases(Described(), handle).lines()
    return result


def rollback(ws: Workspace, *, to: str | None = None, archive: str | None = None,
             confirm: Callable[[str], bool] | None = None, say: Callable[[str], None] = lambda line: None,
             progress: Any = None) -> RollbackResult:
    """`mobius rollback`. A failure leaves the record `failed` and says what state is left (exit 2)."""
    path = prepare_rollback(ws, to=to, archive=archive, confirm=confirm)
    outcome, _ = _run(ws, say, progress, releases.ROLLBACK, "env.rollback", {"archive": str(path)},
                      {"archive": str(path), "to": to}, on_failure="stop")
    handle = _handle(outcome)
    result = RollbackResult(ws.environment, str(path), operation=outcome.id,
                            pre_rollback_backup=handle.get("pre_rollback_backup"))
    result.steps = Phases(Described(), handle).lines()
    releases.protect_rollback_backup(ws)
    return result
