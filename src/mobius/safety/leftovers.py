"""One sweep for what killed runs leave behind: temp files and scratch folders named with their pid.

Every temp name Mobius makes starts with `.mobius-tmp-<pid>-` (see safety.atomic.temp_name_for)
or, in the system temp folder, `mobius-<kind>-<pid>-`. A leftover is removed only when the process
that made it is gone, so two commands running at once never delete each other's work.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from mobius.safety.process import process_alive

_OWNED = re.compile(r"^(?:\.mobius-(?:tmp|restore)-|mobius-[a-z]+-)(\d+)-")
_HIDDEN_GLOB = ".mobius-*"  # filtered by _OWNED: temp files (.mobius-tmp-) and restore staging (.mobius-restore-)


def owner_pid(name: str) -> int | None:
    """The pid encoded in a Mobius temp name, or None when the name is not one of ours."""
    match = _OWNED.match(name)
    return int(match.group(1)) if match else None


def scratch_name(kind: str) -> str:
    """A prefix for a scratch folder in the system temp folder that sweep_system_temp recognises."""
    return f"mobius-{kind}-{os.getpid()}-"


def sweep(folders: Iterable[Path], *, recursive: bool = False) -> list[Path]:
    """Remove temp files and folders of dead processes in `folders`; returns what was removed."""
    removed: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        entries = folder.rglob(_HIDDEN_GLOB) if recursive else folder.glob(_HIDDEN_GLOB)
        for entry in list(entries):
            if _remove_if_dead(entry):
                removed.append(entry)
    if removed:
        from mobius.log import get_logger

        get_logger().info("leftovers.removed", count=len(removed), paths=[str(p) for p in removed[:20]])
    return removed


def sweep_system_temp() -> list[Path]:
    """Remove `mobius-<kind>-<pid>-*` scratch folders of dead processes from the system temp folder."""
    base = Path(tempfile.gettempdir())
    removed = [entry for entry in base.glob("mobius-*-*") if _remove_if_dead(entry)]
    return removed


def rmtree_writable(root: Path) -> None:
    """Remove `root`, making read-only folders inside it writable (a restored tree can hold them).

    Only folders inside `root` are ever chmod-ed: never `root`'s parent (the system temp folder when
    two processes sweep the same dead scratch folder at once and one finds it already gone).
    """
    top = os.path.abspath(root)

    def retry(function, path, _exc_info) -> None:  # noqa: ANN001 - shutil's onerror signature
        path = os.path.abspath(path)
        with contextlib.suppress(OSError):
            if not os.path.lexists(path):
                return  # removed meanwhile (a concurrent sweep): nothing to do
            if path != top:
                os.chmod(os.path.dirname(path), 0o700)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, 0o700)
            function(path)

    shutil.rmtree(root, onerror=retry)


def rmtree_parallel(root: Path, *, workers: int = 2) -> None:
    """rmtree_writable, with the deepest-but-few folder level removed on `workers` threads first.

    Unlinking is file-system work that two threads do about 1.6x as fast as one (a restored
    library of 100,000 small files); links are never followed, and what is left is removed as usual.
    """
    if os.path.islink(root):
        rmtree_writable(root)  # refused there: never list what a link points at
        return
    level = [str(root)]
    for _ in range(3):
        deeper = [entry.path for folder in level for entry in _folders_in(folder)]
        if not deeper:
            break
        level = deeper
        if len(level) >= 4 * workers:
            break
    if len(level) > 1 and workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rmtree") as pool:
            list(pool.map(rmtree_writable, level))
    rmtree_writable(root)


def _folders_in(folder: str) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return [entry for entry in entries if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []  # unreadable: rmtree_writable makes it readable and removes it


def _remove_if_dead(entry: Path) -> bool:
    pid = owner_pid(entry.name)
    if pid is None or pid == os.getpid() or process_alive(pid):
        return False
    if entry.is_dir() and not entry.is_symlink():
        rmtree_writable(entry)
    else:
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
    return not (entry.exists() or entry.is_symlink())
