"""Owner-only modes for what holds secrets or evidence in a workspace.

`state/` (plans, records, evidence), `logs/`, the SQLite database `mobius.db` (with its -wal/-shm)
and `environments/*.env` (passwords) are readable by their owner only, like `.env` and the backup
archives. `make_private` is idempotent and cheap (a few stat calls): every command calls it when it
loads a workspace, so a workspace made before this rule, or by hand, is fixed the next time it is used.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from mobius.config import ENV_FILE_NAME, ENVIRONMENTS_DIR, Workspace

PRIVATE_FOLDER_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def private_paths(ws: Workspace) -> list[tuple[Path, int]]:
    """Each path that must be owner-only, with its mode."""
    paths = [(ws.state, PRIVATE_FOLDER_MODE), (ws.logs, PRIVATE_FOLDER_MODE),
             (ws.root / ENV_FILE_NAME, PRIVATE_FILE_MODE)]
    database = ws.root / "mobius.db"
    paths += [(database.with_name(database.name + suffix), PRIVATE_FILE_MODE) for suffix in SQLITE_COMPANIONS]
    environments = ws.root / ENVIRONMENTS_DIR
    if environments.is_dir():
        paths += [(env_file, PRIVATE_FILE_MODE) for env_file in sorted(environments.glob("*.env"))]
    return paths


def make_private(ws: Workspace) -> list[Path]:
    """Narrow the modes of `private_paths` (never widen; symlinks and others' files are left alone).

    Returns the paths changed. A path that cannot be changed (read-only mount, another owner) is skipped:
    modes are never the reason a command fails.
    """
    changed: list[Path] = []
    for path, mode in private_paths(ws):
        with contextlib.suppress(OSError):
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid():
                continue
            if stat.S_IMODE(info.st_mode) & ~mode:
                os.chmod(path, stat.S_IMODE(info.st_mode) & mode, follow_symlinks=False)
                changed.append(path)
    return changed
