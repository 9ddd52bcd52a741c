"""Temp files a killed migration left in its target, removed by whichever command runs next.

A migration killed while it writes leaves `.mobius-tmp-<pid>-...` files in the target's
sub-folders. Its journal record still says it is unfinished, so any later command (not only
the resume) knows which folder to sweep; the shared sweep removes only temps whose process is
gone, so a migration running at the same time keeps its own.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mobius.config import Workspace, is_url
from mobius.media.journal import MigrationJournal
from mobius.media.migrate import journal_path
from mobius.safety.leftovers import sweep

UNFINISHED = ("running", "stopped", "failed")


def sweep_migration_targets(ws: Workspace) -> list[Path]:
    """Remove dead processes' temp files from the local target of every unfinished migration."""
    try:
        journal = MigrationJournal.read_only(journal_path(ws))
        if journal is None:
            return []
        try:
            targets = {r.target for r in journal.records() if r.status in UNFINISHED and not is_url(r.target)}
        finally:
            journal.close()
    except sqlite3.Error:
        return []  # never the reason a command fails: the migration itself reports a damaged journal
    return sweep(sorted(Path(t) for t in targets), recursive=True)
