"""`mobius rollback --env NAME`: the runbook's rollback_dhash.sh, checked.

verify the archive (sidecar, then every member) -> back up the current state -> restore library +
database + settings -> the deploy's health gate -> record. A failure says what state is left and
exits 2; success is printed only after every step passed. The phases run as one step on the migration
runner (ops.orchestrator): resumable after kill -9, and undone from the record.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mobius.config import Workspace, load_workspace
from mobius.envs import health, releases, restore_point, state
from mobius.envs.places import check_layout
from mobius.envs.restore_point import RestorePoint
from mobius.errors import InputError, MobiusError, VerificationError, describe
from mobius.log import get_logger
from mobius.phases import NOT_CONFIGURED, Phases
from mobius.results import Report, skipped, to_jsonable

if TYPE_CHECKING:
    from mobius.ops.step import StepContext


@dataclass
class EnvironmentRollback:
    """An environment rolled back to a backup: which archive, the run's record id, the safety backup taken first."""

    env: str | None
    archive: str
    operation: str | None = None
    pre_rollback_backup: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)


def choose_archive(ws: Workspace, *, to: str | None = None, archive: str | None = None) -> RestorePoint:
    """The restore point a rollback returns to: `--backup` (a snapshot id, `latest` or an archive), or the one
    the release after `--to` (default: the newest release) took."""
    if to and archive:
        raise InputError("pass --to RELEASE or --backup ARCHIVE, not both")
    point = restore_point.resolve(ws, archive) if archive else releases.backup_for_rollback(ws, to)
    if not restore_point.exists(ws, point):
        raise InputError(f"backup {point.label} does not exist",
                         hint="see `mobius backup list` and `mobius releases`")
    return point


def prepare_rollback(ws: Workspace, *, to: str | None = None, archive: str | None = None,
                     confirm: Callable[[str], bool] | None = None) -> RestorePoint:
    """The restore point a rollback returns to, confirmed (`mobius.ops.commands.rollback` runs it on the runner)."""
    check_layout(ws)
    point = choose_archive(ws, to=to, archive=archive)
    if confirm is not None and not confirm(f"roll {ws.environment} back to {point.label} (the current state is "
                                           "backed up first)?"):
        raise InputError("rollback not confirmed; nothing was changed")
    return point


def run_rollback(ctx: StepContext, archive: str) -> dict[str, Any]:
    """The rollback's phases, each checkpointed in the step's undo handle. The backup of the current state is
    in the handle before the restore begins; a failure names the state it leaves."""
    ws, point = ctx.ws, RestorePoint.parse(archive)
    handle: dict[str, Any] = dict(ctx.undo or {})
    steps = Phases(ctx, handle)
    handle.setdefault("result", {"env": ws.environment, "archive": archive})
    left = "nothing was changed"
    try:
        has_database = steps.run("verify archive", lambda: restore_point.verify(ws, point, ctx.progress))

        def backup_current() -> tuple[str, Any]:
            current = state.back_up_into(ws, handle, "pre_rollback_backup", ctx.progress)
            return current.evidence, current.point.name

        steps.run("backup current", backup_current)
        left = "nothing restored yet"

        def restore() -> tuple[str, Any]:
            nonlocal left
            report = state.restore(ws, point, has_database=has_database)
            if not report.ok:
                left = "partly restored: " + (", ".join(c.name for c in report.checks if c.passed) or "nothing")
            report.raise_if_failed(hint="the state before the rollback is in "
                                        f"{RestorePoint.parse(handle['pre_rollback_backup']).label}")
            left = f"library, database and settings restored from {point.label}"  # before its checkpoint is
            return "; ".join(c.name for c in report.checks), None

        steps.run("restore", restore)
        fresh = load_workspace(ws.root, env=ws.environment)
        if health.ready_url(fresh) is None:
            steps.note("health gate", NOT_CONFIGURED, "set MOBIUS_SERVICE_URL")
        else:
            if fresh.settings.service_restart_command:
                steps.run("restart", lambda: (health.restart_service(fresh) or "", None))
            else:
                steps.note("restart", NOT_CONFIGURED, "set MOBIUS_SERVICE_RESTART_COMMAND")
            steps.run("health gate", lambda: _wait(fresh, ctx.say))
    except Exception as exc:  # ours or a bug's (Ctrl-C is the runner's): the one line says what state is left
        before = handle.get("pre_rollback_backup")
        backup_note = f"; the state before the rollback is in {RestorePoint.parse(before).label}" if before else ""
        if isinstance(exc, InputError) and not handle.get("pre_rollback_backup"):
            raise
        if isinstance(exc, MobiusError):
            hint = exc.hint
        else:  # its traceback to the log file, as the runner keeps a crashed step's
            get_logger().error("env.rollback.crashed", console=False, error=describe(exc),
                               traceback=traceback.format_exc())
            hint = "see the log in logs/ for where it failed"
        raise VerificationError(f"rollback of {ws.environment} failed: {describe(exc)}; state left: {left}"
                                f"{backup_note}", hint=hint) from None
    return handle


def undo_rollback(ctx: StepContext, handle: dict[str, Any]) -> Report:
    """Undo a rollback: the backup of the state before it, restored and proven against its snapshot."""
    if not handle.get("pre_rollback_backup"):
        return Report("env.rollback undo", [skipped("env.rollback.undo", "the rollback changed nothing "
                                                    "(it stopped before its backup of the current state)")])
    report = state.restore(ctx.ws, handle["pre_rollback_backup"], expected=handle.get("snapshot"),
                           has_database=bool(handle.get("has_database", True)))
    report.subject = f"env.rollback undo: {report.subject}"
    return report


def _wait(ws: Workspace, say: Callable[[str], None]) -> tuple[str, Any]:
    check = health.wait_ready(ws, say=say)
    return f"{check.observed} ({check.detail})", to_jsonable(check)
