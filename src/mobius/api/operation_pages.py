"""`/operations` and `/operations/{id}`: every recorded operation, and one of them as it happens.

Server-rendered HTML like the status page, every value escaped and masked. An operation that is still
running (or rolling back) carries `<meta http-equiv="refresh" content="1">`, so a step change shows
within about a second in any browser, with or without JavaScript, and the page stops refreshing by
itself once the operation has ended. Everything is read through `api.reads` (the record store, read-only).
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from mobius.api import reads
from mobius.api.status import CSS, _cls, _table, age, esc
from mobius.config import mask_text
from mobius.printable import printable
from mobius.records import ACTIVE, EventRecord, Operation, StepRecord
from mobius.results import dumps

router = APIRouter(include_in_schema=False)
NAME = r"^[A-Za-z0-9._-]{1,64}$"
REFRESH_S = 1
EXTRA_CSS = """
.rolling-back,.stopped,.refused,.orphaned,.stopping{color:#8a5a00;font-weight:600}
.rolled-back,.rollback-failed,.interrupted{color:#b00020;font-weight:600}.done{color:#176b2c}
.live{background:#fff4d6;padding:.3rem .6rem;border-radius:4px}td code{white-space:pre-wrap}
form label{margin-right:1rem}
"""
MONITOR_PREFIX = "monitor."
ROLLBACK_PREFIX = "rollback."
NOTIFY_PREFIX = "notify."


def _text(value: Any, limit: int = 400) -> str:
    """A value as one escaped, masked, printable line (dicts and lists as compact JSON)."""
    if not isinstance(value, str):
        value = dumps(value)
    value = mask_text(value)
    return esc(printable(value if len(value) <= limit else value[:limit] + " ..."))


def _status(op: Operation) -> str:
    return "orphaned" if op.orphaned else op.status


def _page(title: str, body: str, *, refresh: bool) -> str:
    meta = f"<meta http-equiv='refresh' content='{REFRESH_S}'>" if refresh else ""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(title)}</title>{meta}<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<style>{CSS}{EXTRA_CSS}</style></head><body>"
            f"<p class='muted'><a href='/'>status</a> &middot; <a href='/operations'>operations</a> &middot; "
            f"{esc(now)} UTC</p>{body}</body></html>")


def _link(op_id: str) -> str:
    return f"<a href='/operations/{urllib.parse.quote(op_id, safe='')}'><code>{esc(op_id)}</code></a>"


def render_list(request: Request, type: str | None, status: str | None, limit: int) -> str:
    ws = request.app.state.workspace
    now = dt.datetime.now(dt.UTC)
    ops = reads.list_operations(ws, type=type, status=status, limit=limit)
    rows = [[_link(op.id), esc(op.type), f"<span class='{_cls(_status(op))}'>{esc(_status(op))}</span>",
             esc(op.started), esc(age(op.started, now)),
             esc("" if op.duration_s is None else f"{op.duration_s:.1f} s"),
             esc(f"{sum(s.status == 'done' for s in op.steps)}/{len(op.steps)}" if op.steps else "-"),
             _text(op.error or "", 160)] for op in ops]
    form = ("<form method='get' action='/operations'>"
            f"<label>type <input name='type' value='{esc(type or '')}' placeholder='migrate.run'></label>"
            f"<label>status <input name='status' value='{esc(status or '')}' placeholder='running'></label>"
            "<button type='submit'>filter</button></form>")
    running = any(op.status in ACTIVE and not op.orphaned for op in ops)
    body = (f"<h1>operations</h1>{form}<section id='operations'>"
            + _table(["id", "type", "status", "started", "age", "duration", "steps done", "error"], rows,
                     "no operations match") + "</section>")
    return _page("mobius operations", body, refresh=running)


def _evidence(step: StepRecord) -> str:
    checks = step.evidence.get("checks") if isinstance(step.evidence, dict) else None
    if isinstance(checks, list) and checks:
        return "<br>".join(f"<span class='{_cls(str(c.get('verdict', '')))}'>{esc(str(c.get('verdict', '')))}"
                           f"</span> {esc(str(c.get('name', '')))}"
                           + (f" {_text(c.get('observed'), 80)}" if c.get("observed") is not None else "")
                           for c in checks if isinstance(c, dict))
    rest = {k: v for k, v in (step.evidence or {}).items() if k != "checks"}
    return _text(rest, 300) if rest else ""


def _steps_part(op: Operation, now: dt.datetime) -> str:
    rows = []
    for s in op.steps:
        took = (f"{s.duration_s:.1f} s" if s.duration_s is not None
                else f"{age(s.started, now)} so far" if s.status == "running" and s.started else "")
        rows.append([str(s.idx), esc(s.name), f"<span class='{_cls(s.status)}'>{esc(s.status)}</span>",
                     esc(s.started or ""), esc(took), _evidence(s), _text(s.undo, 200) if s.undo else "",
                     _text(s.error or "", 300)])
    return _table(["#", "step", "status", "started", "time", "evidence", "undo handle", "error"], rows,
                  "no step has started yet")


def _events_part(events: list[EventRecord], prefix: str | None = None, exclude: tuple[str, ...] = ()) -> str:
    rows = [[esc(e.time), esc(e.kind), _text(e.data, 500)] for e in events
            if (prefix is None or e.kind.startswith(prefix)) and not e.kind.startswith(exclude)]
    return _table(["time", "event", "data"], rows, "none")


def _plan_part(op: Operation) -> str:
    plan = op.params.get("plan") if isinstance(op.params.get("plan"), dict) else None
    if not plan:
        return _table(["parameter", "value"], [[esc(k), _text(v, 300)] for k, v in op.params.items()],
                      "no parameters")
    facts = [["name", plan.get("name")], ["type", plan.get("type")], ["risk", plan.get("risk")],
             ["on call", plan.get("oncall")], ["approver", plan.get("approver")], ["window", plan.get("window")],
             ["steps", [next(iter(s)) if isinstance(s, dict) else s for s in plan.get("steps", [])]],
             ["validate", plan.get("validate")], ["monitors", plan.get("monitors")],
             ["plan file", op.params.get("plan_path")]]
    return _table(["", ""], [[esc(k), _text(v, 400)] for k, v in facts if v not in (None, "", [])], "")


def render_operation(request: Request, op_id: str) -> tuple[str, bool] | None:
    """The page of one operation and whether it is still live; None when there is no such operation."""
    ws = request.app.state.workspace
    op = reads.get_operation(ws, op_id)
    if op is None:
        return None
    events = reads.operation_events(ws, op_id)
    children = reads.list_operations(ws, limit=200, parent=op_id)
    now = dt.datetime.now(dt.UTC)
    status = _status(op)
    live = op.status in ACTIVE and not op.orphaned
    done = sum(s.status == "done" for s in op.steps)
    planned = op.params.get("plan", {}).get("steps") if isinstance(op.params.get("plan"), dict) else None
    total = len(planned) + 2 if isinstance(planned, list) else len(op.steps)  # a plan: preflight, steps, validate
    head = (f"<h1>{esc(op.type)} <code>{esc(op.id)}</code></h1>"
            f"<p>status <span class='{_cls(status)}' id='op-status'>{esc(status)}</span>"
            f" &middot; steps done {done}/{total} &middot; started {esc(op.started)}"
            f" ({esc(age(op.started, now))} ago)" + (f" &middot; finished {esc(op.finished)}" if op.finished else "")
            + (f" &middot; {op.duration_s:.1f} s" if op.duration_s is not None else "")
            + (f" &middot; process {op.pid}" if op.pid else "") + "</p>"
            + (f"<p class='live'>running: this page refreshes every {REFRESH_S} s</p>" if live else "")
            + (f"<p class='fail'>orphaned: its process is gone; <code>mobius migrate resume {esc(op.id)}</code> or "
               f"<code>mobius migrate rollback {esc(op.id)} --yes</code></p>" if op.orphaned else "")
            + (f"<p id='op-error'>{_text(op.error, 600)}</p>" if op.error else ""))
    rollback = [e for e in events if e.kind.startswith(ROLLBACK_PREFIX)]
    why = next((e.data.get("reason") for e in rollback if e.kind == "rollback.started"), None)
    links = []
    if op.type == "migrate.run":
        quoted = urllib.parse.quote(op.id, safe="")
        links = [f"<a href='/operations/{quoted}/report?kind=post'>post-migration report</a>",
                 f"<a href='/operations/{quoted}/report?kind=pre'>notice</a>"]
    links.append(f"<a href='/api/operations/{urllib.parse.quote(op.id, safe='')}'>JSON</a>")
    if op.parent:
        links.append(f"part of {_link(op.parent)}")
    sections = [
        ("Plan", _plan_part(op)),
        ("Steps", _steps_part(op, now)),
        ("Monitors", _events_part(events, MONITOR_PREFIX)),
        ("Rollback", (f"<p>why: {_text(why, 600)}</p>" if why else "") + _events_part(events, ROLLBACK_PREFIX)),
        ("Notifications", _events_part(events, NOTIFY_PREFIX)),
        ("Events", _events_part(events, exclude=(NOTIFY_PREFIX,))),
        ("Operations inside", _table(["id", "type", "status"], [[_link(c.id), esc(c.type), esc(_status(c))]
                                                               for c in children], "none")),
        ("Result", f"<pre>{_text(op.result, 4000)}</pre>" if op.result else "<p class='muted'>none yet</p>"),
    ]
    body = head + "<p>" + " &middot; ".join(links) + "</p>" + "".join(
        f"<section id='{title.lower().replace(' ', '-')}'><h2>{title}</h2>{inner}</section>"
        for title, inner in sections)
    return _page(f"{op.type} {op.id} {status}", body, refresh=live), live


@router.get("/operations", response_class=HTMLResponse)
def operations_page(request: Request, type: str | None = Query(None, pattern=NAME),
                    status: str | None = Query(None, pattern=NAME),
                    limit: int = Query(100, ge=1, le=1000)) -> HTMLResponse:
    return HTMLResponse(render_list(request, type or None, status or None, limit),
                        headers={"Cache-Control": "no-store"})


@router.get("/operations/{op_id}", response_class=HTMLResponse)
def operation_page(request: Request, op_id: str) -> HTMLResponse:
    page = render_operation(request, op_id)
    if page is None:
        return HTMLResponse(_page("not found", f"<h1>no operation {esc(op_id)}</h1><p><a href='/operations'>"
                                  "all operations</a></p>", refresh=False), status_code=404)
    return HTMLResponse(page[0], headers={"Cache-Control": "no-store"})


@router.get("/operations/{op_id}/report", response_class=HTMLResponse)
def operation_report(request: Request, op_id: str, kind: str = Query("post", pattern="^(pre|post)$")) -> HTMLResponse:
    """The migration's notice or post-migration report, as `mobius migrate report ID --format html` writes it."""
    from mobius.ops.report import model, to_html  # the report builder: only this page needs it

    ws = request.app.state.workspace
    op = reads.get_operation(ws, op_id)
    if op is None or op.type != "migrate.run":
        raise HTTPException(404, f"no migration {op_id!r}")
    return HTMLResponse(to_html(model(ws, op, reads.operation_events(ws, op_id), kind)),
                        headers={"Cache-Control": "no-store"})
