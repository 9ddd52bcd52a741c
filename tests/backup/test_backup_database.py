"""A backup carries a checked database dump, and `restore --database` puts the rows back."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def _rows(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        return (conn.execute("SELECT COUNT(*) FROM games").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM media_assets").fetchone()[0])


def test_backup_includes_database_dump_and_restore_puts_rows_back(mobius, sample_workspace: Path) -> None:
    db = sample_workspace / "mobius.db"
    before = _rows(db)
    assert before[0] == 3 and before[1] > 0
    code, created = mobius.json("backup", "create", "--archive", "-w", str(sample_workspace))
    assert code == 0, created
    code, verified = mobius.json("backup", "verify", created["path"], "-w", str(sample_workspace))
    assert code == 0 and "database/mobius.dump" in verified["extras"]

    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM media_assets")
        conn.execute("DELETE FROM games")
    assert _rows(db) == (0, 0)

    proc = mobius("backup", "restore", created["path"], "--to", str(sample_workspace / "uploads"),
                  "--database", "--yes", "-w", str(sample_workspace))
    assert proc.returncode == 0, proc.stderr
    assert _rows(db) == before
    # what the restore replaced was dumped first
    assert list((sample_workspace / "backups").glob("*prerestore*"))


def test_restore_database_from_archive_without_dump_changes_nothing(mobius, sample_workspace: Path) -> None:
    code, created = mobius.json("backup", "create", "--archive", "--no-database", "-w", str(sample_workspace))
    assert code == 0
    code, verified = mobius.json("backup", "verify", created["path"], "-w", str(sample_workspace))
    assert code == 0 and "database/mobius.dump" not in verified["extras"]
    proc = mobius("backup", "restore", created["path"], "--to", str(sample_workspace / "uploads"),
                  "--database", "--yes", "-w", str(sample_workspace))
    assert proc.returncode == 1
    assert "database/mobius.dump" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(sample_workspace.glob("uploads.rollback.*"))  # the library was not touched either
