"""Whether a process that left something behind (a temp file, a swap, a record) is still running."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie; its temp files, staging folders and records
    are still in use.

    A killed process whose parent died too (a copy worker of a killed migration) can stay a zombie
    for as long as the container's first process does not reap it: it holds no file and writes
    nothing, so it counts as gone.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            line = stat.read()
    except OSError:
        return False  # no /proc (or gone meanwhile): os.kill said it exists
    state = line[line.rfind(b")") + 2:][:1]  # the name in parentheses may hold anything, even ")"
    return state in (b"Z", b"X")
