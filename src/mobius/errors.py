"""One exception hierarchy; each class carries the exit code the CLI returns for it.

Expected failures raise one of these with a message that names the thing and the fix.
The CLI maps them to a single line on stderr and the exit code, never a traceback.
"""

from __future__ import annotations

import os

EXIT_OK = 0
EXIT_INPUT = 1
EXIT_VERIFY = 2
EXIT_ENVIRONMENT = 3
EXIT_TIMEOUT = 4
EXIT_RESOURCE = 5

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 input or configuration error; 2 processing or verification failure; "
    "3 missing tool or environment; 4 timeout; 5 not enough disk space or other resource."
)


class MobiusError(Exception):
    """Base of every expected failure. `hint` says what to do about it."""

    exit_code = EXIT_VERIFY

    def __init__(self, message: str, *, hint: str | None = None, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or []

    def one_line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InputError(MobiusError):
    """Bad arguments, bad configuration, refused request (exit 1)."""

    exit_code = EXIT_INPUT


class VerificationError(MobiusError):
    """A check failed: checksums differ, files missing, processing failed (exit 2)."""

    exit_code = EXIT_VERIFY


class EnvironmentProblem(MobiusError):
    """A tool, library or service the command needs is missing (exit 3)."""

    exit_code = EXIT_ENVIRONMENT


class OperationTimeout(MobiusError):
    """Waited longer than allowed, for a lock or a process (exit 4)."""

    exit_code = EXIT_TIMEOUT


class ResourceError(MobiusError):
    """Not enough disk space or another resource (exit 5)."""

    exit_code = EXIT_RESOURCE


def describe(exc: BaseException) -> str:
    """One line for a record or a report: our message; a full disk as such (not a bug: the person frees space);
    or the type and text of anything else (a bug's)."""
    if isinstance(exc, MobiusError):
        return exc.message
    if is_disk_full(exc):
        return f"disk full: {type(exc).__name__}: {exc}"
    return f"internal error: {type(exc).__name__}: {exc}"


def is_disk_full(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) is a full disk or quota: ENOSPC/EDQUOT, or SQLite's SQLITE_FULL
    (which reaches us as 'database or disk is full', often wrapped by SQLAlchemy)."""
    import errno

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(current, "sqlite_errorcode", None) == 13 or "database or disk is full" in str(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def read_only_folder(path: str | os.PathLike[str]) -> bool:
    """True when `path` (or the nearest folder above it that exists) is on a read-only mount."""
    from pathlib import Path

    place = Path(path)
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        return bool(os.statvfs(place).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def is_read_only(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) is a write refused by a read-only mount: EROFS, or SQLite's
    SQLITE_READONLY ('attempt to write a readonly database')."""
    import errno

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.EROFS:
            return True
        if getattr(current, "sqlite_errorcode", None) == 8 or "readonly database" in str(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False
