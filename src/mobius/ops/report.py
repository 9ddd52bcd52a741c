"""The runbook's two e-mails, from the record: the pre-migration notice and the post-migration report.

Markdown and HTML from one model; every figure is measured (times, counts, each check with its
evidence, monitor events, the rollback and why). Emergency contacts come from the setting
MOBIUS_EMERGENCY_CONTACTS ("Role: Name, phone; ..."); on-call engineer and approver from the plan.
"""

from __future__ import annotations

import html
from typing import Any

from mobius.config import Workspace
from mobius.printable import printable
from mobius.records import Operation, RecordStore
from mobius.safety.diskspace import human_bytes


def contacts(ws: Workspace) -> list[tuple[str, str]]:
    raw = ws.settings.emergency_contacts or ""
    rows = []
    for part in raw.split(";"):
        role, _, who = part.partition(":")
        if role.strip():
            rows.append((role.strip(), who.strip() or "-"))
    return rows


def _observed(c: dict[str, Any]) -> str:
    """The observed value with its unit; a byte count also as a person reads it: `84668682240 bytes (78.9 GiB)`."""
    value, unit = c.get("observed"), c.get("unit") or ""
    if value is None:
        return ""
    text = f"{value}{' ' + unit if unit else ''}"
    if unit.startswith("bytes") and isinstance(value, int | float) and not isinstance(value, bool):
        text += f" ({human_bytes(value)})"
    return text


def _threshold(c: dict[str, Any]) -> str:
    """The threshold; `>= 837150` held against bytes also as `>= 837150 (817.5 KiB)`."""
    text = str(c.get("threshold") or "")
    operator, _, number = text.partition(" ")
    if (c.get("unit") or "").startswith("bytes") and operator in (">=", "<=") and number.isdigit():
        text += f" ({human_bytes(int(number))})"
    return text


def _check_rows(checks: list[dict[str, Any]]) -> list[list[str]]:
    return [[c.get("verdict", ""), c.get("name", ""), _observed(c), _threshold(c), c.get("source", ""),
             c.get("detail", "")] for c in checks]


def model(ws: Workspace, op: Operation, events: list[Any], kind: str) -> dict[str, Any]:
    plan = op.params.get("plan_doc") or op.params.get("plan") or {}
    pre = next((s for s in op.steps if s.idx == 0), None)
    evidence = pre.evidence if pre else {}
    sections: list[tuple[str, list[str], list[list[str]]]] = []
    facts = [["Migration", op.id], ["Plan", plan.get("name", "")], ["Type", plan.get("type", "")],
             ["Risk", plan.get("risk", "")], ["On-call engineer", plan.get("oncall") or "not named in the plan"],
             ["Approver", plan.get("approver") or "not named in the plan"]]
    window = plan.get("window")
    if window:
        facts.append(["Window", f"{window['start']} - {window['end']} {window.get('timezone', 'UTC')}"])
    estimate = evidence.get("estimate_s") or op.params.get("estimate_s")
    if estimate is not None:
        source = evidence.get("estimate_source") or op.params.get("estimate_source") or "plan"
        facts.append(["Estimated duration", f"{float(estimate):.1f} s ({source})"])
    probes = evidence.get("probes") or op.params.get("probes") or {}
    if probes:
        facts.append(["Probes", "; ".join(f"{name} ~{cost['seconds']:.1f} s" if "seconds" in cost else
                                          f"{name} skipped" for name, cost in probes.items())])
    if kind == "post":
        facts += [["Status", op.status], ["Started", op.started], ["Finished", op.finished or "-"],
                  ["Duration", f"{op.duration_s:.1f} s" if op.duration_s is not None else "-"]]
        if estimate and op.duration_s is not None:
            facts.append(["Duration vs estimate", f"{op.duration_s / float(estimate):.2f} x"])
        if op.error:
            facts.append(["Why", op.error])
    sections.append(("Summary", ["Field", "Value"], facts))
    plans = evidence.get("plans") or op.params.get("plans") or []
    sections.append(("Steps", ["Step", "Plan", "Status", "Seconds", "Changed"],
                     [[p.get("step", ""), p.get("summary", ""), *_step_state(op, i + 1)] for i, p in enumerate(plans)]))
    if evidence.get("checks") or op.params.get("checks"):
        sections.append(("Pre-migration checks", ["Verdict", "Check", "Observed", "Threshold", "Source", "Detail"],
                         _check_rows(evidence.get("checks") or op.params.get("checks"))))
    if kind == "post":
        for s in op.steps:
            if s.idx > 0 and s.evidence.get("checks"):
                sections.append((f"Checks: {s.name}", ["Verdict", "Check", "Observed", "Threshold", "Source",
                                                      "Detail"], _check_rows(s.evidence["checks"])))
        monitor = [[e.time, e.kind, str(e.data.get("value", "")), str(e.data.get("threshold", "")),
                    str(e.data.get("step") or e.data.get("reason") or "")] for e in events]
        sections.append(("Monitor and rollback events", ["Time", "Event", "Value", "Threshold", "Step / reason"],
                         monitor or [["-", "none", "", "", ""]]))
        for e in events:
            if e.kind == "rollback.step":
                sections.append((f"Rollback: {e.data.get('step')}", ["Verdict", "Check", "Observed", "Threshold",
                                                                     "Source", "Detail"],
                                 _check_rows(e.data.get("checks", []))))
    sections.append(("Emergency contacts", ["Role", "Contact"],
                     [list(c) for c in contacts(ws)] or [["-", "not configured (MOBIUS_EMERGENCY_CONTACTS)"]]))
    title = ("Pre-migration notice" if kind == "pre" else "Post-migration report") + f": {plan.get('name', op.id)}"
    return {"title": title, "sections": sections}


def _step_state(op: Operation, idx: int) -> list[str]:
    row = next((s for s in op.steps if s.idx == idx), None)
    if row is None:
        return ["pending", "", ""]
    undo = row.undo or {}
    changed = ", ".join(f"{k} {undo[k]}" for k in ("files", "bytes", "copied_files", "version", "games")
                        if k in undo)
    return [row.status, f"{row.duration_s:.2f}" if row.duration_s is not None else "", changed]


def _md(value: Any) -> str:
    """A plan's or a record's text as Markdown shows it literally: no markup (`<` and `&` become entities,
    so `<script>` and `<img onerror>` are printed as text by every renderer), no table break, no control
    character. `>` stays: without a `<` it opens nothing, and `>= 10` reads better in a terminal."""
    return printable(str(value)).replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")


def markdown(m: dict[str, Any]) -> str:
    out = [f"# {_md(m['title'])}", ""]
    for title, header, rows in m["sections"]:
        out += [f"## {_md(title)}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
        out.append("")
    return "\n".join(out)


def to_html(m: dict[str, Any]) -> str:
    def e(value: Any) -> str:
        return html.escape(printable(str(value)))

    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(m['title'])}</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}"
             "td,th{border:1px solid #999;padding:4px 8px;text-align:left}.fail{background:#fdd}"
             ".pass{background:#dfd}</style></head><body>", f"<h1>{e(m['title'])}</h1>"]
    for title, header, rows in m["sections"]:
        parts.append(f"<h2>{e(title)}</h2><table><thead><tr>"
                     + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>")
        for row in rows:
            css = f' class="{e(str(row[0]))}"' if row and row[0] in ("pass", "fail") else ""
            parts.append(f"<tr{css}>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render(ws: Workspace, op_id: str, *, kind: str = "post", fmt: str = "md") -> str:
    with RecordStore.of(ws) as store:
        op_id = store.resolve(op_id, type="migrate.run")
        op = store.get(op_id)
        if op is None:
            from mobius.errors import InputError

            raise InputError(f"no migration {op_id} in this workspace", hint="see mobius history --type migrate")
        events = store.events(op_id)
    m = model(ws, op, events, kind)
    return to_html(m) if fmt == "html" else markdown(m)
