"""Disk-space guard: refuse before writing, not half-way through."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mobius import faults
from mobius.errors import ResourceError


def existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    return path


def disk_space(path: Path) -> tuple[int, int]:
    """(free, total) bytes of the filesystem that holds (or would hold) `path`.

    MOBIUS_FAULT=free-bytes@disk=N (tests only, mobius.faults) pretends the disk has N bytes free.
    """
    usage = shutil.disk_usage(existing_ancestor(path))
    fake = faults.free_bytes()
    return (usage.free if fake is None else fake), usage.total


def require_free_space(path: Path, needed: int, *, what: str) -> int:
    """Raise ResourceError (exit 5) unless `needed` bytes fit at `path`. Returns the free bytes."""
    free, _ = disk_space(path)
    if free < needed:
        raise ResourceError(
            f"not enough disk space for {what} at {existing_ancestor(path)}: "
            f"need {human_bytes(needed)}, {human_bytes(free)} free",
            hint="free some space or choose another destination",
        )
    return free


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
