"""State fingerprints for proving a rollback: a folder tree, a database's schema and rows, a file.

Each is one sha256 over a canonical listing, so "the prior state is back" is one comparison.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mobius.config import Workspace
from mobius.safety.hashing import sha256_file
from mobius.safety.tree import FILE, LINK, walk


def tree_digest(root: Path) -> str | None:
    """Names, kinds, modes, link targets and file contents under `root`; None when it does not exist."""
    if not root.exists():
        return None
    h = hashlib.sha256()
    for entry in sorted(walk(root), key=lambda e: e.path):
        h.update(f"{entry.path}\0{entry.kind}\0{entry.mode & 0o777:o}\0".encode())
        if entry.kind == FILE:
            h.update(sha256_file(root / entry.path).encode())
        elif entry.kind == LINK:
            h.update((entry.link or "").encode())
        h.update(b"\n")
    return h.hexdigest()


def file_digest(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def database_digest(ws: Workspace, url: str | None = None) -> str | None:
    """Schema (tables, columns, indexes) and every row of every table but the migration history; of the
    workspace database, or of the one at `url`."""
    from sqlalchemy import inspect, text

    from mobius.db.engine import connect, target_for

    target = target_for(ws, url) if url is not None else target_for(ws)
    if target.is_sqlite and not target.sqlite_path.exists():
        return None
    h = hashlib.sha256()
    with connect(target) as conn, conn.begin():
        inspector = inspect(conn)
        quote = conn.dialect.identifier_preparer.quote
        for table in sorted(inspector.get_table_names()):
            if table.startswith("schema_migration"):
                continue
            columns = [c["name"] for c in inspector.get_columns(table)]
            h.update(f"table {table} {columns!r}\n".encode())
            h.update(repr(sorted((c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)))
                     .encode())
            h.update(repr(sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)))
                     .encode())
            order = ", ".join(quote(c) for c in columns)
            for row in conn.execute(text(f"SELECT {order} FROM {quote(table)} ORDER BY {order}")):
                h.update(repr(tuple(str(v) for v in row)).encode())
    return h.hexdigest()


def library_path(ws: Workspace) -> Path:
    return Path(os.path.realpath(ws.library_path))
