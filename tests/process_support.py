"""Helpers for tests that watch a command's worker processes: its children, and whether they are gone."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mobius.safety.process import process_alive


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc: no tool needed)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def gone(pids: list[int], wait: float = 10.0) -> bool:
    """Whether every process in `pids` has ended (a zombie counts as gone: process_alive), waiting up to `wait` s."""
    deadline = time.monotonic() + wait
    while any(process_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not any(process_alive(pid) for pid in pids)
