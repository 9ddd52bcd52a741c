"""The step contract: what every capability's migration offers the orchestrator.

plan/describe -> preflight (checks with evidence) -> apply (returns an undo handle) -> verify
(returns a Report) -> rollback(handle) (verified, returns a Report). A dry run is a mode of the
step (`StepContext.dry_run`): `apply` is not called, `rehearse` may be, and the step says whether
what it printed was rehearsed for real or only described. Steps are found by name in REGISTRY
(mobius.ops.steps.find_step imports the module of the one asked for).

Undo handles are plain JSON (paths, ids, previous values), recorded before the step is marked
done, so a rollback after a crash needs nothing but the record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from mobius.config import Workspace
from mobius.phases import DESCRIBED, DONE, FAILED, NOT_CONFIGURED, REHEARSED, SKIPPED, Phases  # noqa: F401
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
    # persist a handle as soon as it exists; `defer=True`: with the next write (records.RecordStore.step_undo)
    record_undo: Callable[..., None] = lambda handle, defer=False: None
    undo: Any = None  # the handle an earlier, killed run of this step recorded (a resume continues from it)
    checkpoint: Callable[[str], None] = lambda point: None  # a named point inside the step (crash tests)
    confirm: Callable[[str], bool] = lambda question: True  # a command's own question (--yes, or the person)


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

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)  # built when first used


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


REGISTRY: dict[str, Callable[[dict[str, Any]], Step]] = {}


def register_step(name: str) -> Callable[[Callable[[dict[str, Any]], Step]], Callable[[dict[str, Any]], Step]]:
    """Make a step constructible from a plan's `- name: {params}` entry."""

    def wrap(factory: Callable[[dict[str, Any]], Step]) -> Callable[[dict[str, Any]], Step]:
        REGISTRY[name] = factory
        return factory

    return wrap
