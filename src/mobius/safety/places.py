"""Where things live, compared the way the file system sees them, and the layouts that destroy themselves.

Two spellings of one folder (`libs/../libs/stg`, `./stg`, a symlink to it) are one place: paths are
resolved before they are compared. A backups folder inside (or equal to) the library it protects is
archived into itself, and replacing the library (a restore, a promote) moves the restore point away
with it: every command that backs up refuses that layout before it writes anything.
"""

from __future__ import annotations

from pathlib import Path

from mobius.errors import InputError


def resolved(path: str | Path) -> Path:
    """The absolute path with `..`, `.` and symlinks resolved (a path that does not exist yet too)."""
    return Path(path).expanduser().resolve()


def is_within(inner: str | Path, outer: str | Path) -> bool:
    """True when `inner` is `outer` or lies anywhere below it, after resolving both."""
    a, b = resolved(inner), resolved(outer)
    return a == b or b in a.parents


def overlap(a: str | Path, b: str | Path) -> str | None:
    """How two folders overlap ("the same folder", "inside", "contains"), or None when they are apart."""
    ra, rb = resolved(a), resolved(b)
    if ra == rb:
        return "the same folder"
    if rb in ra.parents:
        return "inside"
    if ra in rb.parents:
        return "contains"
    return None


def backups_layout_problem(library: str | Path, backups: str | Path, *, what: str = "library") -> str | None:
    """Why this backups folder cannot protect this library (or goldens folder), or None when the layout is safe."""
    if "://" in str(library) or "://" in str(backups):
        return None  # object storage: never a parent of a local folder
    if resolved(backups) == resolved(library):
        return f"the backups folder {backups} is the {what} {library}"
    if is_within(backups, library):
        return f"the backups folder {backups} is inside the {what} {library}"
    return None


def refuse_backups_in_library(library: str | Path, backups: str | Path, *, what: str = "library") -> None:
    """InputError (exit 1) when a backup of `library` into `backups` would archive, and later lose, itself."""
    problem = backups_layout_problem(library, backups, what=what)
    if problem is not None:
        raise InputError(f"{problem}: a backup would archive itself and replacing the {what} would remove "
                         "its restore point", hint=f"set MOBIUS_BACKUP_DIR to a folder outside the {what}")
