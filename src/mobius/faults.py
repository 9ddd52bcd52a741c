"""Fault injection for the crash and failure tests: one variable, MOBIUS_FAULT, inert unless set.

When MOBIUS_FAULT is unset nothing here reads anything else (one dictionary lookup per call). Its
value is a comma-separated list of `KIND@POINT[=VALUE]` (documented in docs/faults.md):

- `kill@POINT`       SIGKILL this process the first time POINT is reached (no finally, no atexit);
- `crash@POINT`      raise a TypeError at POINT, as a bug in a capability would (not a MobiusError);
- `fail@POINT`       raise a VerificationError at POINT, as a failed check would;
- `slow@POINT=S`     sleep S seconds at POINT (gives a test time to send a signal mid-step);
- `pause@POINT[:N]`  the N-th time a media POINT is reached, write `state/media-test-pause` ("POINT PATH")
                     and wait until a test deletes it (to continue) or kills the process;
- `slow-copy@chunk=MS` sleep MS milliseconds after each copied chunk (media), so a kill lands mid-copy;
- `free-bytes@disk=N` every free-space check sees N bytes free;
- `fail@validation:CHECK` that validation check of a plan reports a failure;
- `error-rate@STEP=R` the monitors see error rate R while plan step STEP runs;
- `disk-full@STEP`   from plan step STEP on, `free-bytes@disk=0`.

Points: the runner's `preflight`, `preflight:done`, `step:NAME`, `inside:NAME`, `between`, `validation`,
`rollback:NAME`; a command's phases `phase:NAME` (before) and `done:NAME` (after it is recorded); the
backup repository's and the media copier's own (see their docs).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from functools import lru_cache
from pathlib import Path

VARIABLE = "MOBIUS_FAULT"
PAUSE_FILE = "media-test-pause"


@lru_cache(maxsize=8)
def _parse(raw: str) -> tuple[tuple[str, str, str], ...]:
    out = []
    for part in raw.split(","):
        kind, at, rest = part.strip().partition("@")
        if at:
            point, _, value = rest.partition("=")
            out.append((kind, point, value))
    return tuple(out)


def active() -> tuple[tuple[str, str, str], ...]:
    """The injected faults as (kind, point, value); empty (and nothing parsed) when MOBIUS_FAULT is unset."""
    raw = os.environ.get(VARIABLE)
    return _parse(raw) if raw else ()


def value(kind: str, point: str) -> str | None:
    """The value of fault `kind@point` ('' when it has none), or None when it is not injected."""
    return next((v for k, p, v in active() if k == kind and p == point), None)


def kill_at(point: str) -> None:
    """SIGKILL ourselves at a named point; or crash, fail or sleep there, as MOBIUS_FAULT asks."""
    faults = active()
    if not faults:
        return
    if value("kill", point) is not None:
        os.kill(os.getpid(), signal.SIGKILL)
    if value("crash", point) is not None:
        raise TypeError(f"injected crash at {point} ({VARIABLE})")
    if value("fail", point) is not None:
        from mobius.errors import VerificationError

        raise VerificationError(f"fault injected at {point} ({VARIABLE})")
    seconds = value("slow", point)
    if seconds is not None:
        time.sleep(float(seconds or 1))  # a signal's handler runs meanwhile; the sleep then finishes (PEP 475)


def fails(check: str) -> bool:
    return value("fail", f"validation:{check}") is not None


def error_rate(step: str) -> float | None:
    ratio = value("error-rate", step)
    return float(ratio) if ratio else None


def disk_full_from(step: str) -> None:
    if value("disk-full", step) is not None:
        os.environ[VARIABLE] = os.environ[VARIABLE] + ",free-bytes@disk=0"


def free_bytes() -> int | None:
    """The free bytes a test pretends the disk has (`free-bytes@disk=N`), or None."""
    fake = value("free-bytes", "disk")
    return int(fake) if fake else None


class _LocalCount:
    """multiprocessing.Value's interface, for when no pause point is set (nothing counts then)."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def get_lock(self) -> threading.Lock:
        return self._lock


class FaultHooks:
    """The media copier's hooks: a slow copy and a pause at a named point (see the module docstring)."""

    def __init__(self, state: Path):
        self.slow = float(value("slow-copy", "chunk") or 0) / 1000
        pause = next((p for k, p, _ in active() if k == "pause"), "")
        point, _, nth = pause.partition(":")
        self.point = point or None
        self.nth = int(nth or 1)
        self.count = _LocalCount()
        if self.point and hasattr(os, "fork"):  # counted across the copy's worker processes (forked later) too
            import multiprocessing

            self.count = multiprocessing.get_context("fork").Value("i", 0)
        self.marker = state / PAUSE_FILE
        self.crash = {p.removeprefix("media:") for k, p, _ in active() if k == "crash" and p.startswith("media:")}

    def chunk(self) -> None:
        if self.slow:
            time.sleep(self.slow)

    def reached(self, point: str, path: str = "") -> None:
        if point in self.crash:  # `crash@media:POINT`: a bug at POINT (a TypeError), in whichever process runs it
            raise TypeError(f"injected crash at media:{point} ({VARIABLE})")
        if point != self.point:
            return
        with self.count.get_lock():
            self.count.value += 1
            if self.count.value != self.nth:
                return
        partial = self.marker.with_name(self.marker.name + ".partial")  # a test reads it whole or not at all
        partial.write_text(f"{point} {path}\n")
        os.replace(partial, self.marker)
        deadline = time.monotonic() + 120
        while self.marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
