"""The places two environments own (library, backups, database), compared as what they really are.

Paths are resolved (`..`, `.`, symlinks) and database URLs parsed by SQLAlchemy before they are
compared, so an alias (`sqlite:///T/./stg.db`, `libs/../libs/stg`, `localhost` for `127.0.0.1`)
is caught in the plan, before anything is backed up or moved.
"""

from __future__ import annotations

from pathlib import Path

from mobius.config import Workspace, is_url
from mobius.errors import InputError
from mobius.safety.places import overlap, refuse_backups_in_library, resolved

_LOOPBACK = frozenset(("localhost", "127.0.0.1", "::1", ""))
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}


def database_identity(ws: Workspace) -> tuple[object, ...]:
    """One value per database: engine, then the resolved file (SQLite) or host, port and name."""
    from mobius.db.engine import target_for

    url = target_for(ws).url
    backend = url.get_backend_name()
    if backend == "sqlite":
        return ("sqlite", str(resolved(url.database)) if url.database not in (None, "", ":memory:") else ws.root)
    host = (url.host or "").lower()
    return (backend, "loopback" if host in _LOOPBACK else host, url.port or _DEFAULT_PORTS.get(backend),
            url.database)


def check_layout(ws: Workspace) -> None:
    """One environment's own places: its backups must not lie in its library."""
    refuse_backups_in_library(ws.library, ws.backups)


def check_promote_places(source: Workspace, target: Workspace) -> None:
    """Refuse (exit 1) two environments whose libraries, backups or databases overlap, and a symlinked target
    library (promote replaces that folder: the link would be replaced, not what it points at)."""
    a, b = source.environment, target.environment
    for ws in (source, target):
        check_layout(ws)
    if is_url(source.library) or is_url(target.library):
        _check_object_libraries(source, target)
        return
    link = Path(target.library)
    if link.is_symlink():
        raise InputError(f"the library of {b}, {target.library}, is a symbolic link (to {resolved(link)}): promote "
                         "replaces the library folder, and would replace the link",
                         hint=f"set MOBIUS_LIBRARY_DIR of {b} to the folder itself")
    how = overlap(source.library, target.library)
    if how == "the same folder":
        raise InputError(f"{a} and {b} share the library {resolved(source.library)}",
                         hint="give each environment its own MOBIUS_LIBRARY_DIR")
    if how is not None:
        inner, outer = (a, b) if how == "inside" else (b, a)
        raise InputError(f"the library of {inner} is inside the library of {outer} ({source.library}, "
                         f"{target.library}): replacing one would move the other",
                         hint="give each environment its own folder, side by side")
    for ws, other in ((source, target), (target, source)):
        if overlap(ws.backups, other.library) in ("the same folder", "inside"):
            raise InputError(f"the backups folder of {ws.environment} ({ws.backups}) is inside the library of "
                             f"{other.environment} ({other.library})",
                             hint="keep backups folders outside every environment's library")
    _check_databases(source, target)


def _check_databases(source: Workspace, target: Workspace) -> None:
    if database_identity(source) == database_identity(target):
        raise InputError(f"{source.environment} and {target.environment} share one database",
                         hint="give each environment its own MOBIUS_DATABASE_URL")


def _check_object_libraries(source: Workspace, target: Workspace) -> None:
    """Two libraries of which at least one is s3://bucket/prefix: never one prefix, nor one inside the other."""
    a, b = (ws.library.rstrip("/") + "/" for ws in (source, target))
    if is_url(source.library) and is_url(target.library) and (a.startswith(b) or b.startswith(a)):
        how = "share the library" if a == b else "have nested libraries"
        raise InputError(f"{source.environment} and {target.environment} {how} ({source.library}, {target.library})",
                         hint="give each environment its own prefix, side by side")
    for ws, other in ((source, target), (target, source)):
        if not is_url(other.library) and overlap(ws.backups, other.library) in ("the same folder", "inside"):
            raise InputError(f"the backups folder of {ws.environment} ({ws.backups}) is inside the library of "
                             f"{other.environment} ({other.library})",
                             hint="keep backups folders outside every environment's library")
    _check_databases(source, target)
