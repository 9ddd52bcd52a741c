"""`/health` (liveness) and `/ready` (readiness), in the health-check JSON draft's shape.

Machines read the HTTP status (200, or 503 when a readiness check fails); people add `?verbose`
for one line per check. The body is `application/health+json`:
`{"status": "pass|warn|fail", "checks": {"<name>": [{"observedValue", "observedUnit", "status", "time", ...}]}}`.
A failed check is `fail`; an inconclusive or skipped one is `warn` (said, never counted as a pass,
but not a reason to take the instance out of rotation).

During shutdown `/ready` fails first (the `shutdown` check) while requests keep being answered;
`/health` stays `pass` until the process stops, as a liveness probe should.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from mobius import __version__
from mobius.api import readiness as ready_lib
from mobius.results import Check, Report, Verdict, to_jsonable

MEDIA_TYPE = "application/health+json"
STATUS = {Verdict.PASS: "pass", Verdict.FAIL: "fail", Verdict.INCONCLUSIVE: "warn", Verdict.SKIPPED: "warn"}
STARTED = time.monotonic()

router = APIRouter(tags=["health"])


class HealthCheckItem(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    status: Literal["pass", "warn", "fail"]
    time: str
    observedValue: Any = None  # noqa: N815 - the draft's field names
    observedUnit: str | None = None  # noqa: N815
    componentType: str | None = None  # noqa: N815
    output: str | None = None
    threshold: Any = None


class Health(BaseModel):
    status: Literal["pass", "warn", "fail"]
    version: str
    serviceId: str = "mobius"  # noqa: N815
    description: str
    checks: dict[str, list[HealthCheckItem]] = Field(default_factory=dict)


class health_response(JSONResponse):  # noqa: N801 - used like a media type
    media_type = MEDIA_TYPE


def _item(check: Check) -> dict[str, Any]:
    item: dict[str, Any] = {"status": STATUS[check.verdict], "time": check.time,
                            "observedValue": to_jsonable(check.observed), "observedUnit": check.unit,
                            "componentType": "component"}
    if check.threshold is not None:
        item["threshold"] = to_jsonable(check.threshold)
    if check.detail and check.verdict is not Verdict.PASS:
        item["output"] = check.detail
    return {k: v for k, v in item.items() if v is not None}


def overall(checks: list[Check]) -> str:
    statuses = {STATUS[c.verdict] for c in checks}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"


def render(report: Report, description: str, verbose: bool) -> Response:
    status = overall(report.checks)
    code = 503 if status == "fail" else 200
    if verbose:
        lines = [f"{'[+]' if c.passed else '[-]'}{c.line()}" for c in report.checks]
        lines.append(f"{report.subject} {'failed' if code == 503 else 'passed' if status == 'pass' else 'warn'}")
        return PlainTextResponse("\n".join(lines) + "\n", status_code=code)
    body = {"status": status, "version": __version__, "serviceId": "mobius", "description": description,
            "checks": {c.name: [_item(c)] for c in report.checks}}
    return health_response(body, status_code=code, headers={"Cache-Control": "no-store"})


_TEXT = {"text/plain": {"schema": {"type": "string"}}}  # ?verbose
_DOC = {200: {"model": Health, "content": {MEDIA_TYPE: {}, **_TEXT}},
        503: {"model": Health, "content": {MEDIA_TYPE: {}, **_TEXT}}}


@router.get("/health", response_class=health_response, response_model=None,
            responses={200: _DOC[200]}, summary="Liveness: the process answers")
def health(verbose: str | None = Query(None, description="Any value: one line per check, for people.")) -> Response:
    uptime = round(time.monotonic() - STARTED, 3)
    report = Report("health", [Check("uptime", Verdict.PASS, uptime, unit="s", source="process")])
    return render(report, "mobius service liveness", verbose is not None)


def _shutdown_check(request: Request) -> Check:
    draining = request.app.state.draining.is_set()
    return Check("shutdown", Verdict.FAIL if draining else Verdict.PASS, draining, source="process",
                 detail="the server is shutting down" if draining else "")


@router.get("/ready", response_class=health_response, response_model=None, responses=_DOC,
            summary="Readiness: database, schema, library, backups, disk, backup age")
def ready(request: Request, verbose: str | None = Query(None, description="Any value: one line per check.")
          ) -> Response:
    shutdown = _shutdown_check(request)
    report = Report("ready", [shutdown]) if shutdown.failed else ready_lib.readiness(request.app.state.workspace)
    if not shutdown.failed:
        report.checks.insert(0, shutdown)
    return render(report, "mobius service readiness", verbose is not None)


@router.get("/ready/{check}", response_class=health_response, response_model=None,
            responses={**_DOC, 404: {"description": "No such check."}}, summary="One readiness check alone")
def ready_one(request: Request, check: str,
              verbose: str | None = Query(None, description="Any value: one line per check.")) -> Response:
    if check == "shutdown":
        report = Report("ready/shutdown", [_shutdown_check(request)])
    elif check in ready_lib.CHECKS:
        report = ready_lib.readiness(request.app.state.workspace, only=check)
    else:
        raise HTTPException(404, f"no readiness check {check!r}; known: shutdown, {', '.join(ready_lib.CHECKS)}")
    return render(report, f"mobius service readiness: {check}", verbose is not None)
