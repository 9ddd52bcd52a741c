"""Whether a process that left something behind (a temp file, a swap, a record) is still running."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """True while process `pid` exists; its temp files, staging folders and records are still in use."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
