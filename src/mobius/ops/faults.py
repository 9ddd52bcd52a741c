"""Test hooks for the orchestrator's crash and failure tests: inert unless MOBIUS_FAULT is set.

MOBIUS_FAULT is a comma-separated list of
- `kill@POINT` : SIGKILL this process the first time POINT is reached (points: preflight,
  step:NAME (before it), inside:NAME (after its undo handle exists, before it finishes),
  between (after a step is recorded done), validation, rollback:NAME);
- `crash@POINT`: raise a TypeError at POINT, as a bug in a capability would (not a MobiusError);
- `fail@POINT`: raise a VerificationError at POINT (points also: phase:NAME before, done:NAME right after
  a command's phase, e.g. `fail@done:database copy`);
- `slow@POINT=SECONDS`: sleep that long at POINT (gives a test time to send SIGTERM mid-step);
- `fail@validation:CHECK`: that validation check reports a failure;
- `error-rate@NAME=RATIO`: the monitors see this error rate while step NAME runs;
- `disk-full@NAME`: from step NAME on, MOBIUS_FAKE_FREE_BYTES=0 (the disk hook every free-space check reads).
"""

from __future__ import annotations

import os
import signal
import time


def _faults() -> list[tuple[str, str]]:
    raw = os.environ.get("MOBIUS_FAULT") or ""
    return [tuple(part.strip().split("@", 1)) for part in raw.split(",") if "@" in part]  # type: ignore[misc]


def kill_at(point: str) -> None:
    """SIGKILL ourselves at a named point (nothing runs after it: no finally, no atexit); or crash or sleep there."""
    faults = _faults()
    if ("kill", point) in faults:
        os.kill(os.getpid(), signal.SIGKILL)
    if ("crash", point) in faults:
        raise TypeError(f"injected crash at {point} (MOBIUS_FAULT)")
    if ("fail", point) in faults:
        from mobius.errors import VerificationError

        raise VerificationError(f"fault injected at {point} (MOBIUS_FAULT)")
    for kind, arg in faults:
        name, _, seconds = arg.partition("=")
        if kind == "slow" and name == point:
            time.sleep(float(seconds or 1))  # a signal's handler runs meanwhile; the sleep then finishes (PEP 475)


def fails(check: str) -> bool:
    return ("fail", f"validation:{check}") in _faults()


def error_rate(step: str) -> float | None:
    for kind, arg in _faults():
        name, _, ratio = arg.partition("=")
        if kind == "error-rate" and name == step:
            return float(ratio)
    return None


def disk_full_from(step: str) -> None:
    if ("disk-full", step) in _faults():
        os.environ["MOBIUS_FAKE_FREE_BYTES"] = "0"
