"""A plain mutating command (db migrate, media migrate, ...) as a one-step plan on the migration runner.

The command's step (ops.steps) calls its capability's `records_call` function. Run here, that call
records no operation of its own: the plan's record is the command's (same type, with the call's
parameters, result and journal id), so the command has a record, resumes after kill -9 (`mobius
migrate resume ID`), is undone from the record (`mobius migrate rollback ID`) and shows in `mobius
history`. The call checks its own input and raises its own errors, which reach the command unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mobius.config import Workspace
from mobius.ops.orchestrator import Orchestrator


def run_step(ws: Workspace, type: str, step: str, step_params: dict[str, Any], *,
             say: Callable[[str], None] = lambda line: None, confirm: Callable[[str], bool] = lambda question: True,
             progress: Any = None, workers: int | None = None, continue_killed: bool = False) -> Any:
    """Run a plain command as the one-step plan `[{step: step_params}]` recorded as `type`; returns the value of
    its capability call (None when the step made none).

    A failure leaves the record `failed`, resumable and undoable from it, and raises the call's own error. The
    runner says nothing of its own: `say` and `confirm` are the command's. Plain commands run beside each other
    (each under its capability's own lock), never beside a plan, a resume or a rollback.

    `continue_killed`: for a command whose capability resumes by being run again (media migrate: its copy
    journal), a run with the same parameters after a kill continues the killed run's record (the same
    operation id, its undo handle from before the kill, an event `resumed` saying so) instead of leaving
    that record `running` forever beside a new one; the command says which record it continues.
    """
    runner = Orchestrator(ws, say=say, progress=progress, workers=workers, confirm=confirm)
    try:
        killed = runner.killed_command(type, step, step_params) if continue_killed else None
        if killed is not None:
            say(f"continuing {type} {killed.id} (its process {killed.pid} was stopped before it ended)")
        if killed is None or runner.continue_command(killed) is None:
            runner.run_command(type, step, step_params, {}, on_failure="stop", quiet=True, checks="call",
                               exclusive=False)
        call = runner.calls.get(1)
    finally:
        runner.close()
    return call.value if call is not None and call.called else None
