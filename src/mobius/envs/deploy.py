"""`mobius deploy --env NAME`: the runbook's deploy_dhash.sh as checked steps.

preflight (Python and library versions, codecs, free disk, database and pending migrations) ->
backup -> database migrations (rehearsed on a copy first) -> pipeline self-test -> release record
-> service restart (when configured) -> health gate (exit 4 on timeout). A dry run changes
nothing and says per step "rehearsed" or "described only". The phases run as one step on the migration
runner (ops.orchestrator): resumable after kill -9, undone from the record.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import TYPE_CHECKING, Any

from mobius import __version__
from mobius.config import Workspace
from mobius.envs import health, releases, state
from mobius.envs.places import check_layout
from mobius.envs.validate import check_codecs, check_database, check_free_disk
from mobius.errors import VerificationError
from mobius.phases import DESCRIBED, NOT_CONFIGURED, REHEARSED, SKIPPED, Described, Phases
from mobius.records import parent_scope
from mobius.results import Report, Verdict, failed, passed, to_jsonable

if TYPE_CHECKING:
    from mobius.ops.step import StepContext

LIBRARIES = ("sqlalchemy", "pydantic", "av", "typer", "numpy")


@dataclass
class DeployResult:
    env: str | None
    dry_run: bool
    release: str | None = None
    preflight: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    backup: str | None = None
    changed: dict[str, Any] = field(default_factory=dict)
    health: dict[str, Any] | None = None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def preflight(ws: Workspace) -> tuple[Report, list[str]]:
    """The checks a deploy needs before it touches anything; and the pending migrations' names."""
    from mobius.db import database_status

    report = Report(f"deploy preflight of {ws.environment or 'the workspace'}")
    report.add(passed("python", platform.python_version(), source=platform.python_implementation()))
    report.add(passed("libraries", f"mobius {__version__}, " + ", ".join(f"{p} {_version(p)}" for p in LIBRARIES)))
    report.add(check_codecs())
    report.add(check_free_disk(ws))
    db = report.add(check_database(ws))
    pending = [f"{m['version']:04d}_{m['name']}" for m in database_status(ws).pending] if not db.failed else []
    report.add(passed("pending migrations", len(pending), detail=", ".join(pending) or "none"))
    return report, pending


def settings_digest(ws: Workspace) -> str:
    return hashlib.sha256(ws.env_file.read_bytes() if ws.env_file.is_file() else b"").hexdigest()[:16]


def dry_run_deploy(ws: Workspace, *, backup: bool, say: Callable[[str], None], progress: Any) -> DeployResult:
    """What a deploy would do, each phase rehearsed or described; nothing changes, not even the record store
    (a dry run is not an operation: `mobius history` lists what changed something)."""
    from mobius.render.pipeline import pipeline_test
    from mobius.render.spec import list_specs

    check_layout(ws)
    result = DeployResult(ws.environment, True)
    report, pending = preflight(ws)
    result.preflight = report.to_dict()
    for line in report.lines():
        say(f"preflight: {line}")
    previous = next(iter(releases.deploys(ws)), None)
    result.changed = {"version": [previous.version if previous else None, __version__],
                      "migrations": pending, "settings_sha256": settings_digest(ws)}
    specs = list_specs(ws.games) if ws.games.is_dir() else []
    steps = Phases(Described(say))
    steps.note("preflight", REHEARSED, f"{len(report.checks)} checks: {report.verdict.value}")
    steps.note("backup", DESCRIBED if backup else SKIPPED, "library, settings, database dump" if backup
               else "--no-backup")
    steps.note("migrations", DESCRIBED, ", ".join(pending) or "none pending")
    if specs:
        with parent_scope(""):  # a rehearsal, not an operation: a dry run writes no record
            test = pipeline_test(ws, progress=progress)
        steps.note("pipeline test", REHEARSED, f"{len(test.games)} game(s): "
                   + ("passed" if test.passed else "; ".join(test.failures()[:3])))
    else:
        steps.note("pipeline test", SKIPPED, "no game specs in games/")
    steps.note("release record", DESCRIBED, f"version {__version__}")
    steps.note("restart", DESCRIBED if ws.settings.service_restart_command else NOT_CONFIGURED,
               ws.settings.service_restart_command or "set MOBIUS_SERVICE_RESTART_COMMAND")
    url = health.ready_url(ws)
    steps.note("health gate", REHEARSED if url else NOT_CONFIGURED,
               f"{url} answers {health.probe(url, 2.0)} now" if url else "set MOBIUS_SERVICE_URL")
    result.steps = steps.lines()
    return result


def forced_preflight(ws: Workspace, *, force: bool) -> Report:
    """The deploy's preflight as the runner reads it: with --force a failed check is overridden (and says so)."""
    report, _ = preflight(ws)
    if force:
        report.checks = [replace(c, verdict=Verdict.PASS, detail=f"overridden by --force: {c.detail}".rstrip(": "))
                         if c.failed else c for c in report.checks]
    return report


def run_deploy(ctx: StepContext, *, force: bool, backup: bool) -> dict[str, Any]:
    """The deploy's phases, each checkpointed in the step's undo handle (a resume continues at the first
    unfinished one). The backup and the snapshot before it are in the handle before anything changes."""
    from mobius.db import migrate_database
    from mobius.render.pipeline import pipeline_test
    from mobius.render.spec import list_specs

    ws = ctx.ws
    handle: dict[str, Any] = dict(ctx.undo or {})
    steps = Phases(ctx, handle)
    if "result" not in handle:
        report, pending = preflight(ws)
        previous = next(iter(releases.deploys(ws)), None)
        changed = {"version": [previous.version if previous else None, __version__], "migrations": pending,
                   "settings_sha256": settings_digest(ws)}
        handle.update(schema_before=state.schema_version(ws), pending=pending, overridden=[
            c.name for c in report.failures()],
            result={"env": ws.environment, "backup": None, "version": __version__,
                    "schema_version": state.schema_version(ws), "changed": changed})
        ctx.record_undo(handle)
    if handle["overridden"]:
        steps.note("preflight", "overridden", f"--force: {', '.join(handle['overridden'])}")
    else:
        steps.note("preflight", "passed", "every check passed")
    if backup:
        def take() -> tuple[str, Any]:
            taken = state.back_up_into(ws, handle, "backup", ctx.progress)
            return taken.evidence, taken.point.name

        steps.run("backup", take)
    else:
        steps.note("backup", SKIPPED, "--no-backup (a rollback to before this release needs --backup)")
    pending = handle["pending"]

    def migrations() -> tuple[str, Any]:
        if not pending:
            return "none pending", None
        out = migrate_database(ws, backup=True, rehearse=True, confirm=lambda question: True)
        seconds = out.rehearsal.seconds if out.rehearsal else 0
        return (f"rehearsed on a copy in {seconds} s, then applied "
                f"{len(out.applied)}: version {out.current_version}"), out.current_version

    steps.run("migrations", migrations)
    if list_specs(ws.games) if ws.games.is_dir() else []:
        def self_test() -> tuple[str, Any]:
            test = pipeline_test(ws, progress=ctx.progress)
            if not test.passed:
                raise VerificationError(f"pipeline self-test failed: {'; '.join(test.failures()[:3])}")
            return f"{len(test.games)} game(s) passed", len(test.games)

        steps.run("pipeline test", self_test)
    else:
        steps.note("pipeline test", SKIPPED, "no game specs in games/")
    after = state.schema_version(ws)
    handle["result"]["changed"]["schema_version"] = [handle["schema_before"], after]
    handle["result"]["schema_version"] = after
    steps.note("release record", "done", f"release {ctx.operation_id}: version {__version__}, schema "
               f"{handle['schema_before']} -> {after}")
    if ws.settings.service_restart_command:
        steps.run("restart", lambda: (health.restart_service(ws) or "", None))
    else:
        steps.note("restart", NOT_CONFIGURED, "set MOBIUS_SERVICE_RESTART_COMMAND")
    if health.ready_url(ws) is None:
        steps.note("health gate", NOT_CONFIGURED, "set MOBIUS_SERVICE_URL")
    else:
        handle["health"] = steps.run("health gate", lambda: _wait(ws, ctx.say))
    return handle


def rollback_deploy(ctx: StepContext, handle: dict[str, Any]) -> Report:
    """Return to the state before the deploy: its backup restored and proven against the snapshot taken
    before it; without a backup (--no-backup), the database migrations rolled back to the version before."""
    from mobius.db import rollback_database

    ws = ctx.ws
    if handle.get("backup"):
        report = state.restore(ws, handle["backup"], expected=handle.get("snapshot"),
                               has_database=bool(handle.get("has_database", True)))
        report.subject = f"deploy rollback: {report.subject}"
        return report
    report = Report("deploy rollback")
    before = handle.get("schema_before")
    if before is not None and state.schema_version(ws) != before:
        rollback_database(ws, to=before, confirm=lambda question: True)
    now = state.schema_version(ws) if before is not None else None
    report.add((passed if now == before else failed)("deploy.schema_version", now, threshold=before,
                                                      source="database status"))
    return report


def _wait(ws: Workspace, say: Callable[[str], None]) -> tuple[str, Any]:
    check = health.wait_ready(ws, say=say)
    return f"{check.observed} ({check.detail})", to_jsonable(check)
