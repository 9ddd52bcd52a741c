"""`mobius deploy --env NAME`: the runbook's deploy_dhash.sh as checked steps.

preflight (Python and library versions, codecs, free disk, database and pending migrations) ->
backup -> database migrations (rehearsed on a copy first) -> pipeline self-test -> release record
-> service restart (when configured) -> health gate (exit 4 on timeout). A dry run changes
nothing and says per step "rehearsed" or "described only".
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from mobius import __version__
from mobius.config import Workspace
from mobius.envs import health, releases, state
from mobius.envs.places import check_layout
from mobius.envs.steps import DESCRIBED, NOT_CONFIGURED, REHEARSED, SKIPPED, Steps
from mobius.envs.validate import check_codecs, check_database, check_free_disk
from mobius.errors import MobiusError, VerificationError
from mobius.records import recorded
from mobius.results import Report, passed

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


def deploy(ws: Workspace, *, dry_run: bool = False, backup: bool = True, force: bool = False,
           say: Callable[[str], None] = lambda line: None, progress: Any = None) -> DeployResult:
    from mobius.db import migrate_database
    from mobius.render.pipeline import pipeline_test
    from mobius.render.spec import list_specs

    check_layout(ws)
    result = DeployResult(ws.environment, dry_run)
    report, pending = preflight(ws)
    result.preflight = report.to_dict()
    for line in report.lines():
        say(f"preflight: {line}")
    if report.failures() and not force:
        report.raise_if_failed(hint="fix them, or pass --force to deploy anyway (recorded)")
    previous = next(iter(releases.deploys(ws)), None)
    result.changed = {"version": [previous.version if previous else None, __version__],
                      "migrations": pending, "settings_sha256": settings_digest(ws)}
    specs = list_specs(ws.games) if ws.games.is_dir() else []
    if dry_run:
        steps = Steps(None, say, dry_run=True)
        steps.note("preflight", REHEARSED, f"{len(report.checks)} checks: {report.verdict.value}")
        steps.note("backup", DESCRIBED if backup else SKIPPED, "library, settings, database dump" if backup
                   else "--no-backup")
        steps.note("migrations", DESCRIBED, ", ".join(pending) or "none pending")
        if specs:
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
        result.steps = steps.to_list()
        return result
    with recorded(ws, releases.DEPLOY, {"env": ws.environment, "force": force, "backup": backup}) as handle:
        result.release = handle.id
        steps = Steps(handle, say)
        if report.failures():
            steps.note("preflight", "overridden", f"--force: {', '.join(c.name for c in report.failures())}")
        else:
            steps.note("preflight", "passed", f"{len(report.checks)} checks")
        if backup:
            archive = steps.run("backup", lambda: _backup(ws, progress))
            result.backup = str(archive.path)
        else:
            steps.note("backup", SKIPPED, "--no-backup (a rollback to before this release needs --backup)")
        before = state.schema_version(ws)
        handle.result = {"env": ws.environment, "backup": result.backup, "version": __version__,
                         "schema_version": before, "changed": result.changed}

        def migrations() -> tuple[str, Any]:
            if not pending:
                return "none pending", None
            out = migrate_database(ws, backup=True, rehearse=True, confirm=lambda question: True)
            seconds = out.rehearsal.seconds if out.rehearsal else 0
            return (f"rehearsed on a copy in {seconds} s, then applied "
                    f"{len(out.applied)}: version {out.current_version}"), out

        steps.run("migrations", migrations)
        if specs:
            def self_test() -> tuple[str, Any]:
                test = pipeline_test(ws, progress=progress)
                if not test.passed:
                    raise VerificationError(f"pipeline self-test failed: {'; '.join(test.failures()[:3])}")
                return f"{len(test.games)} game(s) passed", test

            steps.run("pipeline test", self_test)
        else:
            steps.note("pipeline test", SKIPPED, "no game specs in games/")
        result.changed["schema_version"] = [before, state.schema_version(ws)]
        handle.result = {"env": ws.environment, "backup": result.backup, "version": __version__,
                         "schema_version": result.changed["schema_version"][1], "changed": result.changed}
        steps.note("release record", "done", f"release {handle.id}: version {__version__}, schema "
                   f"{before} -> {result.changed['schema_version'][1]}")
        restarted = steps.run("restart", lambda: (health.restart_service(ws) or "", None)) \
            if ws.settings.service_restart_command else None
        if restarted is None and not ws.settings.service_restart_command:
            steps.note("restart", NOT_CONFIGURED, "set MOBIUS_SERVICE_RESTART_COMMAND")
        _gate(ws, steps, result, handle, say)
        result.steps = steps.to_list()
        handle.result = {**handle.result, "steps": result.steps, "health": result.health}
    releases.protect_rollback_backup(ws)
    return result


def _gate(ws: Workspace, steps: Steps, result: Any, handle: Any, say: Callable[[str], None]) -> None:
    """The health gate as a step; a timeout marks the operation unhealthy, then exits 4."""
    if health.ready_url(ws) is None:
        steps.note("health gate", NOT_CONFIGURED, "set MOBIUS_SERVICE_URL")
        return
    try:
        check = steps.run("health gate", lambda: _wait(ws, say))
    except MobiusError:
        handle.result = {**(handle.result or {}), "steps": steps.to_list()}
        raise
    result.health = check


def _wait(ws: Workspace, say: Callable[[str], None]) -> tuple[str, Any]:
    check = health.wait_ready(ws, say=say)
    return f"{check.observed} ({check.detail})", check


def _backup(ws: Workspace, progress: Any) -> tuple[str, Any]:
    archive = state.take_backup(ws, progress)
    return f"{archive.path.name} verified (sha256 {archive.sha256[:16]}...)", archive
