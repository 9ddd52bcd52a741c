"""What a notification says: built from the record (an operation and one of its events), never from memory.

A message names the operation, says what happened in one line, carries the evidence (the event's
values and thresholds, the steps, the reason of a rollback) and the command to run next, so the
person reading it at 02:00 needs nothing else to act. Which recorded happenings become messages
is the table in `build`; everything else (a step finishing, a monitor sample) stays in the record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mobius.config import MASK, mask_text
from mobius.printable import printable
from mobius.records import EventRecord, Operation

MIGRATION = "migrate.run"
NOTICE = "migrate.notice"
ENV_TYPES = ("env.deploy", "env.rollback", "env.promote")


@dataclass
class Message:
    event: str  # what happened, as a dotted name: migration.started, alert.error_rate, rollback.finished, ...
    severity: str  # info, warning or critical
    operation_id: str
    operation_type: str
    summary: str  # one line
    evidence: dict[str, Any] = field(default_factory=dict)
    next_command: str = ""
    time: str = ""
    report: str | None = None  # the notice or the post-migration report (Markdown), when there is one

    @property
    def subject(self) -> str:
        return printable(f"[mobius] {self.severity}: {self.summary}")  # one header line, whatever a name holds

    def text(self) -> str:
        """The Slack / Mattermost `text`: the summary, the evidence one line each, the next command."""
        lines = [f"*{self.severity.upper()}* {self.summary}", f"operation `{self.operation_id}` ({self.operation_type})"
                 + (f" at {self.time}" if self.time else "")]
        lines += [f"- {key}: {_short(value)}" for key, value in self.evidence.items()]
        if self.next_command:
            lines.append(f"next: `{self.next_command}`")
        return "\n".join(lines)

    def webhook_body(self) -> dict[str, Any]:
        return {"text": self.text(), "event": self.event, "severity": self.severity, "operation": self.operation_id,
                "operation_type": self.operation_type, "summary": self.summary, "evidence": self.evidence,
                "next_command": self.next_command, "time": self.time, "report": self.report}

    def mail_body(self) -> str:
        body = self.text().replace("*", "").replace("`", "")
        return body + ("\n\n" + self.report if self.report else "") + "\n"

    def redacted(self, secrets: Iterable[str]) -> Message:
        """The same message with every occurrence of each secret value replaced by the mask (the last guard:
        the record is masked already, but an error text may quote a token)."""
        secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

        def clean(value: Any) -> Any:
            if isinstance(value, str):
                value = mask_text(value)
                for secret in secrets:
                    value = value.replace(secret, MASK)
                return value
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        return Message(**{k: clean(v) for k, v in self.__dict__.items()})


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(_short(v) for v in value[:12]) + (f"; ... {len(value) - 12} more" if len(value) > 12 else "")
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)[:300]
    return str(value)[:500]


def _checks(checks: Any) -> list[str]:
    """`name: verdict (observed X, threshold Y)` for each recorded check."""
    out = []
    for c in checks or []:
        if isinstance(c, dict):
            seen = f" observed {c.get('observed')}{' ' + c['unit'] if c.get('unit') else ''}" \
                if c.get("observed") is not None else ""
            want = f" threshold {c.get('threshold')}" if c.get("threshold") is not None else ""
            out.append(f"{c.get('name')}: {c.get('verdict')}{seen}{want}")
    return out


def _steps(op: Operation) -> list[str]:
    return [f"{s.idx}. {s.name} {s.status}" + (f" in {s.duration_s:.1f} s" if s.duration_s is not None else "")
            + (f" ({s.error})" if s.error else "") for s in op.steps]


def _plan(op: Operation) -> dict[str, Any]:
    plan = op.params.get("plan") if isinstance(op.params.get("plan"), dict) else {}
    return plan or {}


def _monitor_evidence(data: dict[str, Any]) -> dict[str, Any]:
    keys = ("value", "threshold", "step", "for_s", "held_s", "free_bytes", "estimate_s")
    return {k: data[k] for k in keys if k in data}


def build(op: Operation, kind: str, data: dict[str, Any], events: list[EventRecord],
          report: Callable[[str, str], str | None] = lambda op_id, kind: None) -> Message | None:
    """The message for `kind` (an event of `op`, or operation.started / operation.finished), or None when
    that is not something people are told about. `report(op_id, "pre"|"post")` renders a report."""
    if op.type == MIGRATION:
        return _migration(op, kind, data, events, report)
    if op.type == NOTICE and kind == "operation.finished" and data.get("status") == "completed":
        plan = op.params.get("plan_doc") or {}
        return Message("notice.sent", "info", op.id, op.type,
                       f"notice: migration {op.params.get('plan')} is planned",
                       {"plan": op.params.get("plan"), "risk": plan.get("risk"), "window": plan.get("window"),
                        "oncall": plan.get("oncall"), "approver": plan.get("approver"),
                        "estimate_s": op.params.get("estimate_s"),
                        "steps": [f"{p.get('step')}: {p.get('summary')}" for p in op.params.get("plans", [])]},
                       f"mobius migrate report {op.id} --kind pre --format html --out notice.html",
                       report=report(op.id, "pre"))
    if op.type in ENV_TYPES and kind == "operation.finished":
        status = data.get("status", op.status)
        what = op.type.split(".")[1]
        env = op.params.get("env") or op.params.get("to") or ""
        ok = status == "completed"
        evidence = {"environment": env, "status": status, **({"error": mask_text(op.error)} if op.error else {})}
        for key in ("release", "backup", "archive", "pre_rollback_backup", "health"):
            if key in op.result:
                evidence[key] = op.result[key]
        next_command = f"mobius history {op.id}" if ok else (
            f"mobius rollback --env {env} --yes" if what == "deploy" else f"mobius history {op.id}")
        return Message(f"env.{what}.{'completed' if ok else 'failed'}", "info" if ok else "critical", op.id, op.type,
                       f"{what} of {env or 'an environment'} {'completed' if ok else status}", evidence, next_command)
    if op.type.startswith("backup.") and kind == "operation.finished" and data.get("status") == "failed":
        what = "backup verification failed" if "verif" in (op.error or "") + op.type else f"{op.type} failed"
        return Message("backup.failed", "critical", op.id, op.type, what,
                       {"error": mask_text(op.error or ""), **{k: v for k, v in op.params.items()
                                                               if isinstance(v, str | int | float | bool)}},
                       "mobius backup verify --json  (then mobius backup create)")
    return None


def _migration(op: Operation, kind: str, data: dict[str, Any], events: list[EventRecord],
               report: Callable[[str, str], str | None]) -> Message | None:
    plan = _plan(op)
    name = plan.get("name", "?")
    watch = f"mobius migrate status {op.id} --watch"
    undo = f"mobius migrate rollback {op.id} --yes"
    if kind == "operation.started":
        return Message("migration.started", "info", op.id, op.type,
                       f"migration {name} started ({plan.get('type')}, risk {plan.get('risk')})",
                       {"plan": name, "steps": [next(iter(s)) if isinstance(s, dict) else str(s)
                                                for s in plan.get("steps", [])],
                        "oncall": plan.get("oncall"), "approver": plan.get("approver"),
                        "pid": op.pid}, watch)
    alerts = {"monitor.error_rate.alert": ("alert.error_rate", "warning", "error rate above the alert threshold"),
              "monitor.disk.stop": ("alert.disk", "critical", "free disk under the minimum: stopping"),
              "monitor.duration.escalate": ("alert.duration", "warning", "running longer than the estimate allows")}
    if kind in alerts:
        event, severity, what = alerts[kind]
        next_command = (f"mobius migrate resume {op.id}  (after freeing space) or {undo}" if event == "alert.disk"
                        else f"{watch}  (to stop and undo now: kill -TERM {op.pid}; then {undo})")
        return Message(event, severity, op.id, op.type, f"migration {name}: {what}",
                       _monitor_evidence(data), next_command)
    if kind == "rollback.started":
        automatic = data.get("automatic", True)
        return Message("rollback.started", "critical" if automatic else "warning", op.id, op.type,
                       f"migration {name}: {'automatic ' if automatic else ''}rollback started",
                       {"reason": data.get("reason"), "automatic": automatic,
                        "steps": _steps(op)}, watch)
    if kind == "rollback.done":
        undone = [f"{e.data.get('step')}: {'verified' if e.data.get('ok') else 'FAILED'}"
                  for e in events if e.kind == "rollback.step"]
        return Message("rollback.finished", "warning", op.id, op.type,
                       f"migration {name} rolled back; every step's undo verified",
                       {"reason": data.get("reason"), "undone": undone, "env_sha256": data.get("env_sha256"),
                        "seconds": data.get("seconds")}, f"mobius migrate report {op.id}")
    if kind == "rollback.failed":
        return Message("rollback.failed", "critical", op.id, op.type,
                       f"migration {name}: ROLLBACK FAILED; finish by hand",
                       {"reason": data.get("reason"), "left": data.get("left"),
                        "checks": _checks(data.get("checks"))}, f"after fixing: {undo}")
    if kind == "stopped":
        return Message("migration.stopped", "warning", op.id, op.type, f"migration {name} stopped",
                       {"reason": data.get("reason"), "steps": _steps(op)},
                       f"mobius migrate resume {op.id}  or  {undo}")
    if kind == "completed":
        validation = next((s for s in op.steps if s.name == "validate"), None)
        return Message("migration.completed", "info", op.id, op.type, f"migration {name} completed",
                       {"steps": _steps(op), "seconds": op.duration_s,
                        "validation": _checks(validation.evidence.get("checks")) if validation else []},
                       f"mobius migrate report {op.id} --format html --out report.html",
                       report=report(op.id, "post"))
    if kind == "operation.finished" and data.get("status") == "refused":
        return Message("migration.refused", "warning", op.id, op.type,
                       f"migration {name} refused by its preflight; nothing was changed",
                       {"reason": mask_text(op.error or data.get("error") or "")},
                       f"mobius migrate plan {op.params.get('plan_path', 'PLAN.yaml')}")
    return None
