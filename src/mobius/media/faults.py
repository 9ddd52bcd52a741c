"""Test hooks for crash tests: inert unless their environment variables are set.

MOBIUS_TEST_SLOW_COPY_MS=N sleeps N ms after each copied chunk, so a kill lands mid-copy.
MOBIUS_TEST_PAUSE=POINT[:N] stops the N-th time POINT is reached (copy, verify, publish, commit,
switch, switched, rolled-back), writes `state/media-test-pause` ("POINT PATH") and waits until a
test deletes that file (to continue) or kills the process.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from mobius.safety.atomic import atomic_write_text

PAUSE_FILE = "media-test-pause"


class FaultHooks:
    def __init__(self, state: Path):
        self.slow = float(os.environ.get("MOBIUS_TEST_SLOW_COPY_MS") or 0) / 1000
        point, _, nth = (os.environ.get("MOBIUS_TEST_PAUSE") or "").partition(":")
        self.point = point or None
        self.nth = int(nth or 1)
        self.count = 0
        self.marker = state / PAUSE_FILE
        self._lock = threading.Lock()

    def chunk(self) -> None:
        if self.slow:
            time.sleep(self.slow)

    def reached(self, point: str, path: str = "") -> None:
        if point != self.point:
            return
        with self._lock:
            self.count += 1
            if self.count != self.nth:
                return
        atomic_write_text(self.marker, f"{point} {path}\n")
        deadline = time.monotonic() + 120
        while self.marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
