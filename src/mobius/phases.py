"""The named phases inside one command (deploy, env promote, env rollback), each checkpointed.

Core, below the capabilities and the runner: a capability writes its command's phases with it, and
the runner (ops.orchestrator) persists them through the step context it passes in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DONE, FAILED, SKIPPED = "done", "failed", "skipped"
REHEARSED, DESCRIBED, NOT_CONFIGURED = "rehearsed", "described only", "not configured"


@dataclass
class Phases:
    """The named phases inside one step (deploy's backup, migrations, health gate, ...), checkpointed in the
    step's undo handle: each phase's line and JSON value is recorded (`ctx.record_undo`) the moment it ends,
    so a step resumed after kill -9 returns the recorded value of every finished phase and re-enters the
    first unfinished one. A dry run uses the same lines with `note` (rehearsed / described only / skipped).

    Checkpoints (`ctx.checkpoint`, the crash tests' kill points): `phase:NAME` before a phase runs,
    `done:NAME` right after it is recorded.
    """

    ctx: Any  # an ops.step.StepContext, or anything with say, record_undo and checkpoint
    handle: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.handle.setdefault("phases", [])

    def recorded(self, name: str) -> dict[str, Any] | None:
        return next((p for p in self.handle["phases"] if p["step"] == name and p["status"] != FAILED), None)

    def run(self, name: str, action: Callable[[], tuple[str, Any]], *, redo_safe: bool = False) -> Any:
        """Run `action` (returns (evidence line, JSON value)) unless a killed run recorded it done; a failure,
        of any kind, is recorded before it propagates.

        `redo_safe`: the phase changed nothing, or running it again gives the same end (and its value holds
        nothing an undo needs), so its checkpoint is committed with the step's next write instead of its own
        fsync; a kill before that commit only makes a resume run it again."""
        done = self.recorded(name)
        if done is not None:
            return done.get("value")
        self.ctx.checkpoint(f"phase:{name}")
        started = time.monotonic()
        try:
            evidence, value = action()
        except BaseException as exc:
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self._record(name, FAILED, message, started)
            raise
        self._record(name, DONE, evidence, started, value, defer=redo_safe)
        self.ctx.checkpoint(f"done:{name}")
        return value

    def note(self, name: str, status: str, evidence: str = "") -> None:
        """A phase rehearsed, only described, not configured or skipped: said and recorded, never silent."""
        if self.recorded(name) is None:
            self._record(name, status, evidence, time.monotonic())
            self.ctx.checkpoint(f"done:{name}")

    def _record(self, name: str, status: str, evidence: str, started: float, value: Any = None, *,
                defer: bool = False) -> None:
        entry = {"step": name, "status": status, "evidence": evidence,
                 "seconds": round(time.monotonic() - started, 3), "value": value}
        self.handle["phases"] = [p for p in self.handle["phases"] if p["step"] != name] + [entry]
        self.ctx.say(f"{name:<18} {status:<15} {evidence}".rstrip())
        self.ctx.record_undo(self.handle, defer=defer)

    def lines(self) -> list[dict[str, Any]]:
        """The phases as the commands print them (without their values)."""
        return [{k: v for k, v in p.items() if k != "value"} for p in self.handle["phases"]]


@dataclass
class Described:
    """A context for phases that are only said (a dry run): nothing is persisted, no checkpoint."""

    say: Callable[[str], None] = lambda line: None

    def record_undo(self, handle: Any, defer: bool = False) -> None:
        pass

    def checkpoint(self, point: str) -> None:
        pass
