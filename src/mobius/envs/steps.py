"""The step list of promote, deploy and rollback: each step recorded with its evidence, and in a dry run
each one says whether it was truly rehearsed or only described (no step is silently skipped).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mobius.errors import VerificationError
from mobius.records import OperationHandle

REHEARSED = "rehearsed"
DESCRIBED = "described only"
DONE = "done"
NOT_CONFIGURED = "not configured"
FAILED = "failed"
SKIPPED = "skipped"

FAULT_ENV = "MOBIUS_TEST_FAIL_AFTER"  # tests only: fail right after the named step


@dataclass
class StepLine:
    name: str
    status: str
    evidence: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        return f"{self.name:<18} {self.status:<15} {self.evidence}".rstrip()


@dataclass
class Steps:
    """Runs named steps in order, records each in the operation record, prints one line per step."""

    handle: OperationHandle | None
    say: Callable[[str], None]
    dry_run: bool = False
    lines: list[StepLine] = field(default_factory=list)

    def _record(self, step: StepLine, evidence: Any = None, undo: Any = None, error: str | None = None) -> None:
        self.lines.append(step)
        self.say(step.line())
        if self.handle is not None:
            idx = len(self.lines)
            self.handle.store.step_started(self.handle.id, idx, step.name)
            self.handle.store.step_finished(self.handle.id, idx, step.status, evidence=evidence or step.evidence,
                                            undo=undo, error=error)

    def run(self, name: str, action: Callable[[], tuple[str, Any]], *, undo: Any = None) -> Any:
        """Run `action` (returns (evidence line, value)); a failure is recorded, then re-raised."""
        started = time.monotonic()
        try:
            evidence, value = action()
        except BaseException as exc:  # an interrupt or a bug is a failed step too, in the record
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self._record(StepLine(name, FAILED, message, time.monotonic() - started), error=message)
            raise
        self._record(StepLine(name, DONE, evidence, time.monotonic() - started), undo=undo)
        if os.environ.get(FAULT_ENV) == name:
            raise VerificationError(f"fault injected after step {name} ({FAULT_ENV})")
        return value

    def note(self, name: str, status: str, evidence: str = "") -> None:
        """A step that was rehearsed, only described, not configured or skipped: said, never silent."""
        self._record(StepLine(name, status, evidence))

    def to_list(self) -> list[dict[str, Any]]:
        return [{"step": s.name, "status": s.status, "evidence": s.evidence, "seconds": round(s.seconds, 3)}
                for s in self.lines]
