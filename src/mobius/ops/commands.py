"""deploy, env promote and env rollback as one-step plans on the migration runner.

The capability (mobius.envs) says what each phase does; here each command is run as its step
(ops.steps.envs) by the Orchestrator, so it has a record of its own type, resumes after kill -9
(`mobius migrate resume ID`) and is undone from the record (`mobius migrate rollback ID`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mobius.config import Workspace, load_workspace
from mobius.envs.places import check_layout
from mobius.envs.promote import PromoteResult, prepare_promote
from mobius.envs.rollback import EnvironmentRollback, prepare_rollback
from mobius.errors import InputError
from mobius.ops.orchestrator import Orchestrator, RunOutcome
from mobius.phases import Described, Phases
from mobius.results import to_jsonable

if TYPE_CHECKING:  # deploy's and the releases' modules load with their commands: a promote never needs them
    from mobius.envs.deploy import DeployResult


def _run(ws: Workspace, say: Callable[[str], None], progress: Any,
         drive: Callable[[Orchestrator], RunOutcome]) -> tuple[RunOutcome, Any, Workspace]:
    """Drive the runner (a new command, or a resume); the outcome, its preflight step and the workspace it ran
    in (a resume runs in the environment its record names)."""
    runner = Orchestrator(ws, say=say, progress=progress)
    try:
        outcome = drive(runner)
        preflight = next((s for s in runner.store.get(outcome.id).steps if s.idx == 0), None)
        ran_in = runner.ws
    finally:
        runner.close()
    return outcome, preflight, ran_in


def _recorded_deploy(runner: Orchestrator, op_id: str, env: str | None) -> str:
    """The id of the deploy `op_id` names (`latest`: the newest deploy); any other operation is refused."""
    from mobius.envs import releases

    op_id = runner.store.resolve(op_id, type=releases.DEPLOY)
    op = runner.store.get(op_id)
    if op is None or op.type != releases.DEPLOY:
        raise InputError(f"{op_id} is not a deploy" + (f" (it is {op.type})" if op else " in this workspace"),
                         hint="see mobius history --type env.deploy; other operations resume with "
                              "`mobius migrate resume ID`")
    if env is not None and op.params.get("env") != env:
        raise InputError(f"deploy {op_id} ran in {op.params.get('env')!r}, not {env!r}",
                         hint=f"mobius deploy --resume {op_id} (it resumes in its own environment)")
    return op_id


def _handle(outcome: RunOutcome) -> dict[str, Any]:
    return next((s["undo"] for s in outcome.steps if s["idx"] == 1), None) or {}


def deploy(ws: Workspace, *, dry_run: bool = False, backup: bool = True, force: bool = False,
           resume: str | None = None, say: Callable[[str], None] = lambda line: None,
           progress: Any = None) -> DeployResult:
    """`mobius deploy`. A failed phase leaves the record `failed` with its backup, as `mobius rollback` expects.

    `resume=ID` continues a killed deploy from its record (its own options, its own environment), exactly as
    `mobius migrate resume ID` does."""
    from mobius.envs import releases
    from mobius.envs.deploy import DeployResult, dry_run_deploy

    if dry_run:
        return dry_run_deploy(ws, backup=backup, say=say, progress=progress)
    if resume is not None:
        named = ws.environment
        outcome, preflight, ws = _run(ws, say, progress, lambda runner: runner.resume(
            _recorded_deploy(runner, resume, named)))
    else:
        check_layout(ws)
        outcome, preflight, ws = _run(ws, say, progress, lambda runner: runner.run_command(
            releases.DEPLOY, "env.deploy", {"force": force, "backup": backup}, {"backup": backup},
            on_failure="stop", force=force))
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
    outcome, _, _ = _run(load_workspace(root), say, progress, lambda runner: runner.run_command(
        "env.promote", "env.promote", {"from": source, "to": target, "prepared": result.plan},
        {"from": source, "to": target}, on_interrupt="rollback"))
    handle = _handle(outcome)
    result.operation, result.backup = outcome.id, handle.get("backup")
    result.steps = Phases(Described(), handle).lines()
    return result


def rollback(ws: Workspace, *, to: str | None = None, archive: str | None = None,
             confirm: Callable[[str], bool] | None = None, say: Callable[[str], None] = lambda line: None,
             progress: Any = None) -> EnvironmentRollback:
    """`mobius rollback`. A failure leaves the record `failed` and says what state is left (exit 2)."""
    from mobius.envs import releases

    point = prepare_rollback(ws, to=to, archive=archive, confirm=confirm)
    outcome, _, _ = _run(ws, say, progress, lambda runner: runner.run_command(
        releases.ROLLBACK, "env.rollback", {"archive": point.name}, {"archive": point.name, "to": to},
        on_failure="stop"))
    handle = _handle(outcome)
    result = EnvironmentRollback(ws.environment, point.name, operation=outcome.id,
                            pre_rollback_backup=handle.get("pre_rollback_backup"))
    result.steps = Phases(Described(), handle).lines()
    releases.protect_rollback_backup(ws)
    return result
