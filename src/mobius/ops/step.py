"""The step contract: what every capability's migration offers the orchestrator.

plan/describe -> preflight (checks with evidence) -> apply (returns an undo handle) -> verify
(returns a Report) -> rollback(handle) (verified, returns a Report). A dry run is a mode of the
step (`StepContext.dry_run`): `apply` is not called, `rehearse` may be, and the step says whether
what it printed was rehearsed for real or only described. Steps are found by name in REGISTRY.

Undo handles are plain JSON (paths, ids, previous values), recorded before the step is marked
done, so a rollback after a crash needs nothing but the record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from mobius.config import Workspace
from mobius.progress import NoProgress, Progress
from mobius.results import Report


@dataclass
class StepContext:
    """What a step gets instead of a dozen parameters."""

    ws: Workspace
    operation_id: str | None = None
    dry_run: bool = False
    yes: bool = True
    workers: int | None = None
    progress: Progress = field(default_factory=NoProgress)
    say: Callable[[str], None] = lambda line: None
    error_rate: Callable[[int, int], None] = lambda failed, total: None  # feeds the monitors
    record_undo: Callable[[Any], None] = lambda handle: None  # persist a handle as soon as it exists
    undo: Any = None  # the handle an earlier, killed run of this step recorded (a resume continues from it)
    checkpoint: Callable[[str], None] = lambda point: None  # a named point inside the step (crash tests)


@dataclass
class StepPlan:
    """What a step would do, measured where possible (bytes it will write feed the space check)."""

    summary: str
    writes_bytes: int = 0
    estimate_s: float | None = None
    details: list[str] = field(default_factory=list)
    rehearsed: bool = False  # True when the dry run really exercised the work (e.g. on a copy)


class StepParams(BaseModel):
    """A step's parameters as the plan gives them, checked when the plan is read, never mid-run.

    Exact types (a quoted "3", 1.5 or `true` is not a count), no unknown keys: the plan reader turns
    a violation into one `PLAN:LINE` error before anything is recorded or changed.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Step(Protocol):
    """One capability migration step with its parameters."""

    name: ClassVar[str]
    Params: ClassVar[type[StepParams]]  # its parameters; the constructor validates them (ValidationError)
    probes: ClassVar[tuple[str, ...]]  # the probes that measure what it changes (a plan's default; optional)

    def plan(self, ctx: StepContext) -> StepPlan: ...

    def preflight(self, ctx: StepContext) -> Report: ...

    def apply(self, ctx: StepContext) -> Any:
        """Do the work (resumable through the capability's own journal); returns the undo handle."""
        ...

    def verify(self, ctx: StepContext, handle: Any) -> Report: ...

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        """Undo with the handle and verify the prior state is back; a failed check is in the report."""
        ...


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

    ctx: StepContext
    handle: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.handle.setdefault("phases", [])

    def recorded(self, name: str) -> dict[str, Any] | None:
        return next((p for p in self.handle["phases"] if p["step"] == name and p["status"] != FAILED), None)

    def run(self, name: str, action: Callable[[], tuple[str, Any]]) -> Any:
        """Run `action` (returns (evidence line, JSON value)) unless a killed run recorded it done; a failure,
        of any kind, is recorded before it propagates."""
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
        self._record(name, DONE, evidence, started, value)
        self.ctx.checkpoint(f"done:{name}")
        return value

    def note(self, name: str, status: str, evidence: str = "") -> None:
        """A phase rehearsed, only described, not configured or skipped: said and recorded, never silent."""
        if self.recorded(name) is None:
            self._record(name, status, evidence, time.monotonic())
            self.ctx.checkpoint(f"done:{name}")

    def _record(self, name: str, status: str, evidence: str, started: float, value: Any = None) -> None:
        entry = {"step": name, "status": status, "evidence": evidence,
                 "seconds": round(time.monotonic() - started, 3), "value": value}
        self.handle["phases"] = [p for p in self.handle["phases"] if p["step"] != name] + [entry]
        self.ctx.say(f"{name:<18} {status:<15} {evidence}".rstrip())
        self.ctx.record_undo(self.handle)

    def lines(self) -> list[dict[str, Any]]:
        """The phases as the commands print them (without their values)."""
        return [{k: v for k, v in p.items() if k != "value"} for p in self.handle["phases"]]


REGISTRY: dict[str, Callable[[dict[str, Any]], Step]] = {}


def register_step(name: str) -> Callable[[Callable[[dict[str, Any]], Step]], Callable[[dict[str, Any]], Step]]:
    """Make a step constructible from a plan's `- name: {params}` entry."""

    def wrap(factory: Callable[[dict[str, Any]], Step]) -> Callable[[dict[str, Any]], Step]:
        REGISTRY[name] = factory
        return factory

    return wrap
