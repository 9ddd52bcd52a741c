"""`--watch`: follow one recorded operation live in the terminal until it ends, then exit with its exit code.

The view is read from the record store (read-only, so watching never writes and works while the
operation holds its locks) every half second: the steps with their status and time (the plan's
pending steps too), progress, the monitors' latest verdicts, the newest events. On a terminal the
screen is redrawn in place; otherwise each new line is printed once, so a log or a pipe reads as a
transcript. Under --json nothing is drawn: the final record is printed when the operation ends.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Any

from mobius.config import Workspace, mask_text
from mobius.printable import printable
from mobius.records import ACTIVE, EventRecord, Operation, RecordStore

INTERVAL_S = 0.5
EVENTS_SHOWN = 8
EXIT_INTERRUPTED = 130


def exit_code_of(op: Operation, events: list[EventRecord]) -> int:
    """The exit code the command that ran `op` ended with, read from its record (0 ok, 2 failed or rolled
    back automatically, 3 stopped on request, 5 stopped for disk space, 130 interrupted)."""
    if op.status == "completed":
        return 0
    if op.status == "rolled-back":
        started = next((e for e in events if e.kind == "rollback.started"), None)
        return 0 if started is not None and started.data.get("automatic") is False else 2
    if op.status == "stopped":
        reason = next((str(e.data.get("reason", "")) for e in reversed(events) if e.kind == "stopped"), "")
        return 3 if "SIGTERM" in reason else 5 if "disk" in reason or "space" in reason else 2
    if op.status == "interrupted":
        return EXIT_INTERRUPTED
    return 2


def ended(op: Operation) -> bool:
    return op.status not in ACTIVE or op.orphaned


def _seconds(since: str | None, now: dt.datetime) -> float | None:
    from mobius.safety.stamps import parse_utc

    try:
        return (now - parse_utc(since)).total_seconds() if since else None
    except ValueError:
        return None


def _value(data: dict[str, Any]) -> str:
    keys = ("value", "threshold", "step", "reason", "destination", "message", "attempt", "error")
    return " ".join(f"{k}={data[k]}" for k in keys if data.get(k) not in (None, ""))[:160]


def view(op: Operation, events: list[EventRecord], now: dt.datetime | None = None) -> list[str]:
    """The lines of the view: header, progress, steps (pending ones from the plan), monitors, events."""
    now = now or dt.datetime.now(dt.UTC)
    status = "orphaned (its process is gone)" if op.orphaned else op.status
    took = op.duration_s if op.duration_s is not None else _seconds(op.started, now)
    plan = op.params.get("plan") if isinstance(op.params.get("plan"), dict) else {}
    names = ["preflight", *[next(iter(s)) if isinstance(s, dict) else str(s) for s in plan.get("steps", [])],
             "validate"] if plan else [s.name for s in op.steps]
    rows = {s.idx: s for s in op.steps}
    done = sum(s.status == "done" for s in op.steps)
    width = 20
    filled = round(width * done / len(names)) if names else width
    lines = [f"{op.type} {op.id}" + (f"  {plan.get('name')}" if plan.get("name") else "")
             + f"  {status}" + (f"  {took:.1f} s" if took is not None else "")
             + (f"  (process {op.pid})" if op.pid and not ended(op) else ""),
             f"progress [{'#' * filled}{'.' * (width - filled)}] {done}/{len(names)} steps done"]
    for idx, name in enumerate(names):
        row = rows.get(idx)
        if row is None:
            lines.append(f"  {idx:>2} {name:<16} pending")
            continue
        spent = (f"{row.duration_s:.1f} s" if row.duration_s is not None
                 else f"{(_seconds(row.started, now) or 0):.1f} s so far" if row.status == "running" else "")
        lines.append(f"  {idx:>2} {row.name:<16} {row.status:<12} {spent}"
                     + (f"  {mask_text(row.error)[:100]}" if row.error else ""))
    monitors: dict[str, EventRecord] = {}
    for e in events:
        if e.kind.startswith("monitor."):
            monitors[e.kind.split(".")[1]] = e
    lines.append("monitors: " + ("; ".join(f"{name} {e.kind.split('.')[-1]} ({_value(e.data)}) at {e.time[11:19]}"
                                           for name, e in sorted(monitors.items())) or "no verdict yet"))
    lines.append(f"events (newest {EVENTS_SHOWN}):" if events else "events: none yet")
    lines += [f"  {e.time[11:19]} {e.kind} {_value(e.data)}" for e in events[-EVENTS_SHOWN:]]
    if op.error:
        lines.append(f"error: {mask_text(op.error)[:300]}")
    return [printable(line) for line in lines]


def follow(ws: Workspace, op_id: str, *, draw: bool, interval: float = INTERVAL_S) -> tuple[Operation, list, int]:
    """Redraw (a terminal) or print new lines (anything else) until the operation ends; returns the final
    record, its events and its exit code. `draw=False` (--json) only waits."""
    terminal = draw and sys.stdout.isatty()
    printed: set[str] = set()
    if terminal:
        sys.stdout.write("\x1b[2J\x1b[?25l")  # a clear screen; the cursor hidden while redrawing
    try:
        while True:
            with RecordStore.of(ws, read_only=True) as store:
                op = store.get(op_id)
                events = store.events(op_id) if op else []
            if op is None:
                from mobius.errors import InputError

                raise InputError(f"no operation {op_id} in this workspace", hint="see mobius history")
            finished = ended(op)
            if draw:
                lines = view(op, events)
                if finished:
                    code = exit_code_of(op, events)
                    lines.append(f"{op.type} {op.id} ended: {op.status}"
                                 + (" (its process is gone: resume or roll back)" if op.orphaned else "")
                                 + f"; exit {code}")
                if terminal:
                    sys.stdout.write("\x1b[H" + "".join(line[:200] + "\x1b[K\n" for line in lines) + "\x1b[J")
                else:
                    for line in lines[1:]:  # the header changes every tick (elapsed time); the rest when it happens
                        key = line.split(" so far")[0] if "so far" in line else line
                        if key not in printed:
                            printed.add(key)
                            sys.stdout.write(line + "\n")
                    if finished:
                        sys.stdout.write(lines[0] + "\n")
                sys.stdout.flush()
            if finished:
                return op, events, exit_code_of(op, events)
            time.sleep(interval)
    finally:
        if terminal:
            sys.stdout.write("\x1b[?25h")
            sys.stdout.flush()
