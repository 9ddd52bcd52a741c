"""The status page at `/`: one server-rendered HTML page, no JavaScript.

Readiness, the last operations with their verdicts, backups with age and verification, the newest
golden result per game (with a link to its HTML report), and a per-day rollup of operations by status
computed from the record store (so it says what ran, whether or not anyone was looking).
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from mobius.api import reads
from mobius.api.health import overall
from mobius.api.readiness import readiness
from mobius.config import mask_text
from mobius.results import Check, Verdict
from mobius.safety.diskspace import human_bytes

router = APIRouter(include_in_schema=False)
esc = html.escape

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem auto;max-width:70rem;color:#222;padding:0 1rem}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.8rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #eee}
.pass,.completed,.verified{color:#176b2c;font-weight:600}.fail,.failed{color:#b00020;font-weight:600}
.warn,.unverified,.running{color:#8a5a00;font-weight:600}.muted{color:#777}code{font-size:12px}
"""


def age(then: dt.datetime | str | None, now: dt.datetime | None = None) -> str:
    """'3 min', '5.2 h', '2.0 d' since `then` (an aware datetime or an ISO string)."""
    if then is None:
        return "-"
    if isinstance(then, str):
        from mobius.safety.stamps import parse_utc

        try:
            then = parse_utc(then)
        except ValueError:
            return "-"
    seconds = ((now or dt.datetime.now(dt.UTC)) - then).total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _cls(word: str) -> str:
    return esc(word.replace(" ", "-"))


def _table(headers: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f"<p class='muted'>{esc(empty)}</p>"
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _check_row(c: Check) -> list[str]:
    status = {Verdict.PASS: "pass", Verdict.FAIL: "fail"}.get(c.verdict, "warn")
    observed = "" if c.observed is None else f"{c.observed}{' ' + c.unit if c.unit else ''}"
    return [esc(c.name), f"<span class='{status}'>{esc(c.verdict.value)}</span>", esc(observed),
            esc("" if c.threshold is None else str(c.threshold)), esc(mask_text(c.detail))]


def _section(title: str, build: Any) -> str:
    try:
        inner = build()
    except Exception as exc:  # noqa: BLE001 - one unreadable source must not blank the page
        inner = f"<p class='fail'>cannot read: {esc(type(exc).__name__)}: {esc(mask_text(str(exc))[:200])}</p>"
    return f"<section id='{esc(title.lower().replace(' ', '-'))}'><h2>{esc(title)}</h2>{inner}</section>"


def render_page(request: Request) -> str:
    ws = request.app.state.workspace
    now = dt.datetime.now(dt.UTC)
    draining = request.app.state.draining.is_set()

    def ready_part() -> str:
        report = readiness(ws)
        status = "fail" if draining else overall(report.checks)
        rows = [_check_row(c) for c in report.checks]
        head = f"<p>Readiness: <span class='{status}' id='ready-status'>{status}</span>"
        head += " (shutting down)</p>" if draining else "</p>"
        return head + _table(["check", "verdict", "observed", "threshold", "detail"], rows, "no checks")

    def ops_part() -> str:
        rows = []
        for op in reads.list_operations(ws, limit=20):
            status = "orphaned" if op.orphaned else op.status
            verdict = f"<span class='{_cls(status)}'>{esc(status)}</span>"
            rows.append([f"<a href='/operations/{esc(op.id)}'><code>{esc(op.id)}</code></a>", esc(op.type), verdict,
                         esc(op.started), esc(age(op.started, now)),
                         esc("" if op.duration_s is None else f"{op.duration_s:.1f} s"),
                         esc(mask_text(op.error or "")[:200])])
        return _table(["id", "type", "verdict", "started", "age", "duration", "error"], rows,
                      "no operations recorded yet")

    def backups_part() -> str:
        rows = [[esc(b.path.name), esc(age(b.created, now)), esc(human_bytes(b.size)),
                 f"<span class='{_cls(b.state)}'>{esc(b.state)}</span>", esc(b.checked_at or "-")]
                for b in reads.list_backups(ws)[:20]]
        return _table(["archive", "age", "size", "verification", "checked"], rows, "no backups")

    def golden_part() -> str:
        rows = []
        for g in reads.golden_results(ws):
            link = (f"<a href='/golden/{esc(g.game)}/report'>report</a>" if g.html else "-")
            rows.append([esc(g.game), f"<span class='{_cls(g.verdict)}'>{esc(g.verdict)}</span>",
                         str(g.passed), str(g.failed), esc(", ".join(g.failed_checks[:5])),
                         esc(age(g.checked, now) if g.checked else "-"), link])
        return _table(["game", "verdict", "passed", "failed", "failed checks", "age", "HTML report"], rows,
                      "no golden files and no recorded golden checks")

    def rollup_part() -> str:
        rollup = reads.daily_rollup(ws)
        statuses = sorted({s for day in rollup.values() for s in day})
        rows = [[esc(day), *(str(counts.get(s, 0)) for s in statuses), str(sum(counts.values()))]
                for day, counts in rollup.items()]
        return _table(["day (UTC)", *statuses, "total"], rows, "no operations in the last 14 days")

    parts = [_section("Readiness", ready_part), _section("Last operations", ops_part),
             _section("Backups", backups_part), _section("Golden results", golden_part),
             _section("Operations per day", rollup_part)]
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>mobius status</title>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<style>{CSS}</style></head><body><h1>mobius status</h1>"
            f"<p class='muted'>workspace {esc(str(ws.root))} &middot; {esc(now.strftime('%Y-%m-%d %H:%M:%S'))} UTC"
            " &middot; <a href='/operations'>operations</a>"
            " &middot; <a href='/ready?verbose'>ready</a> &middot; <a href='/metrics'>metrics</a>"
            " &middot; <a href='/docs'>API</a></p>" + "".join(parts) + "</body></html>")


@router.get("/", response_class=HTMLResponse)
def status_page(request: Request) -> HTMLResponse:
    return HTMLResponse(render_page(request), headers={"Cache-Control": "no-store"})


@router.get("/favicon.ico")
def favicon() -> HTMLResponse:
    """No icon: an empty answer rather than a 404 the browser would log as a console error."""
    return HTMLResponse(b"", status_code=204)


@router.get("/golden/{game}/report")
def golden_report(request: Request, game: str) -> FileResponse:
    path = reads.golden_report_file(request.app.state.workspace, game)
    if path is None:
        raise HTTPException(404, f"no HTML report recorded for {game!r}")
    return FileResponse(path, media_type="text/html")
