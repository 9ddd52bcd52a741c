"""The runbook's pre-migration checklist, automated: each item a Check with its evidence.

A failed check is a verdict in the report, never an exception: `migrate plan` prints them all
and exits 2; `migrate run` refuses to start (and records why).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

from mobius.config import Workspace, is_url
from mobius.ops.plan import Plan
from mobius.ops.step import Step, StepContext, StepPlan
from mobius.ops.validation import probe_costs
from mobius.results import Check, Report, at_least, failed, passed, skipped
from mobius.safety.diskspace import disk_space, human_bytes
from mobius.safety.stamps import parse_utc

SPACE_FACTOR = 3
CHECKLIST_S = 1.0  # this checklist, the baseline and the validation themselves (about 1 s measured on the sample)


def backup_check(ws: Workspace, plan: Plan) -> list[Check]:
    """A recent verified backup (test-restored for high risk), or the plan takes one as a step."""
    names = [name for name, _ in plan.step_list()]
    if names and names[0] == "backup":
        return [passed("backup.recent", "taken now", source="the plan's first step",
                       detail="created, verified (and its archive is the restore point) before anything changes")]
    from mobius.backup import (
        LIBRARY_PREFIX,
        test_restore,
        test_restore_snapshot,
        verify_archive,
        verify_snapshot,
    )
    from mobius.backup.points import SNAPSHOT, backup_points

    max_age = plan.backup_max_age if plan.backup_max_age is not None else ws.settings.backup_max_age_hours * 3600
    try:
        backups = backup_points(ws, LIBRARY_PREFIX)  # archives and snapshots, newest first
    except Exception as exc:  # noqa: BLE001 - an unreadable backups folder is a failed check
        return [failed("backup.recent", None, source=str(ws.backups), detail=str(exc)[:300])]
    if not backups:
        return [failed("backup.recent", None, threshold=f"<= {max_age / 3600:g} h old", source=str(ws.backups),
                       detail="no backup; add `- backup: {}` as the first step or run `mobius backup create`")]
    newest = backups[0]
    snapshot = newest.kind == SNAPSHOT
    age = (dt.datetime.now(dt.UTC) - newest.created).total_seconds()
    checks = [(passed if age <= max_age else failed)("backup.recent", round(age / 3600, 2), unit="h",
                                                     threshold=f"<= {max_age / 3600:g}", source=newest.name,
                                                     detail=newest.label)]
    try:
        # a snapshot: every byte of every pack it needs, as verify_archive reads every byte of an archive
        report = (verify_snapshot(ws, newest.name, read_data=True) if snapshot
                  else verify_archive(Path(newest.name)).raise_if_failed())
        checks.append(passed("backup.verified", getattr(report, "files", None), unit="files" if snapshot else "members",
                             source=newest.name))
    except Exception as exc:  # noqa: BLE001 - a damaged backup is a failed check
        checks.append(failed("backup.verified", None, source=newest.name, detail=str(exc)[:300]))
    if plan.risk == "high":
        try:
            restored = (test_restore_snapshot(ws, newest.name) if snapshot
                        else test_restore(Path(newest.name)).raise_if_failed())
            checks.append(passed("backup.test_restore", getattr(restored, "files", None), unit="files",
                                 source="mobius backup test-restore"))
        except Exception as exc:  # noqa: BLE001
            checks.append(failed("backup.test_restore", None, source=newest.name, detail=str(exc)[:300]))
    return checks


def space_check(ws: Workspace, plans: list[StepPlan]) -> Check:
    needed = SPACE_FACTOR * sum(p.writes_bytes for p in plans)
    free, _ = disk_space(ws.root)
    return at_least("disk.free", free, needed, unit="bytes", source=f"statvfs {ws.root}",
                    detail=f"{human_bytes(free)} free; {SPACE_FACTOR} x the {human_bytes(needed / SPACE_FACTOR)} "
                           "the steps will write")


def writable_checks(ws: Workspace) -> list[Check]:
    checks = []
    folders = [ws.root, ws.backups, ws.state, ws.golden if ws.golden.exists() else ws.golden.parent]
    if not is_url(ws.library):
        folders.append(ws.library_path)
    for folder in folders:
        folder = Path(folder)
        ok = folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
        mode = f"{folder.stat().st_mode & 0o777:o}" if folder.exists() else "missing"
        checks.append((passed if ok else failed)(f"writable.{folder.name}", str(folder), source="os.access",
                                                 detail=f"mode {mode}"))
    return checks


def service_check(ws: Workspace) -> tuple[Check, float | None]:
    """The service's `/ready`, probed as deploy's health gate probes it (envs.health)."""
    from mobius.config import mask_text
    from mobius.envs.health import probe, ready_url

    url = ready_url(ws)
    if url is None:
        return skipped("service.ready", "not configured (MOBIUS_SERVICE_URL)", source="settings"), None
    started = time.monotonic()
    answer = probe(url, timeout=5)
    seconds = time.monotonic() - started
    if not answer.isdigit():
        return failed("service.ready", None, source=mask_text(url), detail=answer[:200]), None
    return (passed if answer == "200" else failed)("service.ready", int(answer), threshold=200,
                                                     source=mask_text(url), detail=f"{seconds * 1000:.0f} ms"), seconds


def window_check(plan: Plan, *, force: bool) -> Check:
    if plan.window is None:
        return skipped("window", "the plan names no window")
    start, end = plan.window.bounds()
    now = dt.datetime.now(dt.UTC)
    span = f"{start.isoformat()} .. {end.isoformat()}"
    if start <= now < end:
        return passed("window", now.isoformat(timespec="seconds"), threshold=span)
    verdict = passed if force else failed
    return verdict("window", now.isoformat(timespec="seconds"), threshold=f"{start.isoformat()} .. {end.isoformat()}",
                   detail="outside the window; --force given" if force else "outside the window (--force overrides)")


def notice_check(ws: Workspace, plan: Plan, *, force: bool) -> Check:
    """High risk: the pre-migration notice went out at least the lead time before the window."""
    if plan.risk != "high":
        return skipped("notice.lead_time", f"risk {plan.risk}: no notice period required")
    from mobius.records import RecordStore

    lead = plan.notice_lead if plan.notice_lead is not None else ws.settings.notice_lead_hours * 3600
    with RecordStore.of(ws) as store:
        notices = [op for op in store.list(type="migrate.notice", limit=200) if op.params.get("plan") == plan.name]
    start = plan.window.bounds()[0] if plan.window else dt.datetime.now(dt.UTC)
    if not notices:
        verdict = passed if force else failed
        return verdict("notice.lead_time", None, threshold=f">= {lead / 3600:g} h", source="record store",
                       detail="no notice recorded (mobius migrate report PLAN --kind pre)"
                       + ("; --force given" if force else ""))
    ahead = (start - parse_utc(notices[0].started)).total_seconds()
    ok = ahead >= lead
    return (passed if ok or force else failed)("notice.lead_time", round(ahead / 3600, 2), unit="h",
                                               threshold=f">= {lead / 3600:g}", source=f"notice {notices[0].id}",
                                               detail="--force given" if force and not ok else "")


def run_preflight(ws: Workspace, plan: Plan, steps: list[Step], *, force: bool = False,
                  ctx: StepContext | None = None) -> tuple[Report, dict[str, Any]]:
    """Every checklist item; returns the report and the measurements later phases need."""
    ctx = ctx or StepContext(ws)
    report = Report(f"preflight of {plan.name}")
    plans = [step.plan(ctx) for step in steps]
    report.extend(backup_check(ws, plan))
    report.add(space_check(ws, plans))
    report.extend(writable_checks(ws))
    for step in steps:
        report.extend(step.preflight(ctx).checks)
    if not any(step.name == "db.migrate" for step in steps):
        report.extend(_database_reachable(ws))
    rehearsed = 0.0
    if plan.risk == "high":
        db_steps = [s for s in steps if hasattr(s, "rehearse")]
        if not db_steps:
            report.add(skipped("rehearsal", "no database step to rehearse"))
        for step in db_steps:
            try:
                seen = step.rehearse(ctx)  # type: ignore[attr-defined]
                rehearsed += float(seen.get("seconds") or 0)
                report.add(passed("rehearsal", seen.get("seconds"), unit="s", source="db migrate --rehearse",
                                  detail=f"{len(seen.get('migrations', []))} migration(s) on a throwaway copy"))
            except Exception as exc:  # noqa: BLE001 - a failed rehearsal is the verdict
                report.add(failed("rehearsal", None, source="db migrate --rehearse", detail=str(exc)[:300]))
    service, _ = service_check(ws)
    report.add(service)
    report.add(window_check(plan, force=force))
    report.add(notice_check(ws, plan, force=force))
    measured = {"plans": [{"step": s.name, **_plan_dict(p)} for s, p in zip(steps, plans, strict=True)],
                **estimate_of(ws, plan, plans, rehearsed)}
    return report, measured


def estimate_of(ws: Workspace, plan: Plan, plans: list[StepPlan], rehearsed: float = 0.0) -> dict[str, Any]:
    """How long the run will take: the plan's `estimate`, or the checklist, the steps' plans, the rehearsal
    and the probes (each probe's cost is in `probes`), so the duration monitor counts what the run does."""
    probes = probe_costs(ws, plan.probe_names(), plan.probe_samples)
    probing = sum(p.get("seconds", 0) for p in probes.values())
    estimate = plan.estimate or (CHECKLIST_S + sum(p.estimate_s or 0 for p in plans) + rehearsed + probing)
    source = "plan" if plan.estimate else ("checklist + step plans" + (" + rehearsal" if rehearsed else "")
                                           + (" + probes" if probing else ""))
    return {"probes": probes, "estimate_s": round(estimate, 3), "estimate_source": source}


def _plan_dict(p: StepPlan) -> dict[str, Any]:
    return {"summary": p.summary, "writes_bytes": p.writes_bytes, "estimate_s": p.estimate_s, "details": p.details}


def _database_reachable(ws: Workspace) -> list[Check]:
    from mobius.db import database_status

    try:
        status = database_status(ws)
    except Exception as exc:  # noqa: BLE001
        return [failed("db.reachable", None, source="database_status", detail=str(exc)[:300])]
    pending = [f"{p['version']:04d}_{p['name']}" for p in status.pending]
    return [passed("db.reachable", status.database, source="database_status",
                   detail=f"version {status.current_version}"),
            passed("db.pending", len(pending), unit="migrations", source="db status",
                   detail=", ".join(pending) or "none")]
