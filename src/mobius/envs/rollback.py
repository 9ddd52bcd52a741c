"""`mobius rollback --env NAME`: the runbook's rollback_dhash.sh, checked.

verify the archive (sidecar, then every member) -> back up the current state -> restore library +
database + settings -> the deploy's health gate -> record. A failure says what state is left and
exits 2; success is printed only after every step passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobius.config import Workspace, load_workspace
from mobius.envs import health, releases, state
from mobius.envs.places import check_layout
from mobius.envs.steps import NOT_CONFIGURED, Steps
from mobius.errors import InputError, MobiusError, VerificationError
from mobius.records import recorded


@dataclass
class RollbackResult:
    env: str | None
    archive: str
    operation: str | None = None
    pre_rollback_backup: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)


def choose_archive(ws: Workspace, *, to: str | None = None, archive: str | None = None) -> Path:
    from mobius.backup import resolve_archive

    if to and archive:
        raise InputError("pass --to RELEASE or --backup ARCHIVE, not both")
    path = resolve_archive(ws, archive) if archive else releases.backup_for_rollback(ws, to)
    if not path.is_file():
        raise InputError(f"backup {path} does not exist", hint="see `mobius backup list` and `mobius releases`")
    return path


def rollback(ws: Workspace, *, to: str | None = None, archive: str | None = None,
             confirm: Callable[[str], bool] | None = None, say: Callable[[str], None] = lambda line: None,
             progress: Any = None) -> RollbackResult:
    from mobius.backup import DATABASE_MEMBER, verify_archive

    check_layout(ws)
    path = choose_archive(ws, to=to, archive=archive)
    result = RollbackResult(ws.environment, str(path))
    with recorded(ws, releases.ROLLBACK, {"env": ws.environment, "archive": str(path), "to": to}) as handle:
        result.operation = handle.id
        steps = Steps(handle, say)
        done: list[str] = []
        try:
            checked = steps.run("verify archive", lambda: _verify(path, verify_archive, progress))
            if confirm is not None and not confirm(f"roll {ws.environment} back to {path.name} (the current state is "
                                                   "backed up first)?"):
                raise InputError("rollback not confirmed; nothing was changed")
            current = steps.run("backup current", lambda: _backup(ws, progress))
            result.pre_rollback_backup = str(current.path)
            handle.result = {"env": ws.environment, "archive": str(path), "pre_rollback_backup": str(current.path)}

            def restore() -> tuple[str, Any]:
                report = state.restore(ws, path, has_database=DATABASE_MEMBER in checked.extras)
                if not report.ok:
                    done[-1] = "partly restored: " + (", ".join(c.name for c in report.checks if c.passed) or
                                                      "nothing")
                report.raise_if_failed(hint=f"the state before the rollback is in {current.path.name}")
                return "; ".join(c.name for c in report.checks), report

            done.append("nothing restored yet")
            steps.run("restore", restore)
            done[-1] = f"library, database and settings restored from {path.name}"
            fresh = load_workspace(ws.root, env=ws.environment)
            if health.ready_url(fresh) is None:
                steps.note("health gate", NOT_CONFIGURED, "set MOBIUS_SERVICE_URL")
            else:
                if fresh.settings.service_restart_command:
                    steps.run("restart", lambda: (health.restart_service(fresh) or "", None))
                else:
                    steps.note("restart", NOT_CONFIGURED, "set MOBIUS_SERVICE_RESTART_COMMAND")
                steps.run("health gate", lambda: _wait(fresh, say))
        except MobiusError as exc:
            handle.result = {**(handle.result or {}), "steps": steps.to_list()}
            left = done[-1] if done else "nothing was changed"
            backup_note = (f"; the state before the rollback is in {Path(result.pre_rollback_backup).name}"
                           if result.pre_rollback_backup else "")
            if isinstance(exc, InputError) and not result.pre_rollback_backup:
                raise
            raise VerificationError(f"rollback of {ws.environment} failed: {exc.message}; state left: {left}"
                                    f"{backup_note}", hint=exc.hint) from None
        result.steps = steps.to_list()
        handle.result = {**(handle.result or {}), "steps": result.steps}
    releases.protect_rollback_backup(ws)
    return result


def _verify(path: Path, verify_archive: Callable[..., Any], progress: Any) -> tuple[str, Any]:
    report = verify_archive(path, progress)
    return f"sha256 {report.sha256[:16]}... matches the sidecar; {report.files} files match the manifest", report


def _backup(ws: Workspace, progress: Any) -> tuple[str, Any]:
    archive = state.take_backup(ws, progress)
    return f"{archive.path.name} verified", archive


def _wait(ws: Workspace, say: Callable[[str], None]) -> tuple[str, Any]:
    check = health.wait_ready(ws, say=say)
    return f"{check.observed} ({check.detail})", check
