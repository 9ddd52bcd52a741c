"""A promote with nothing changed proves "the databases are identical" from their change tokens instead of
digesting every row; a database changed since (in the same second, its mtime put back) is never taken as
unchanged: the next promote copies it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from mobius.config import load_workspace
from mobius.envs.database_proof import BY_TOKENS
from mobius.records import RecordStore

from .conftest import table_rows

PROMOTE = ("env", "promote", "--from", "staging", "--to", "production", "--yes")


def _database_check(root: Path, op_id: str) -> dict:
    with RecordStore.of(load_workspace(root)) as store:
        checks = store.get(op_id).steps[1].evidence["checks"]
    return next(c for c in checks if c["name"] == "env.promote.database")


def test_unchanged_databases_are_proven_by_tokens_and_a_change_in_the_same_second_is_copied(
        mobius, two_envs: Path) -> None:
    root = two_envs
    code, first = mobius.json(*PROMOTE, "-w", str(root))
    assert code == 0, first
    copy = next(s for s in first["steps"] if s["step"] == "database copy")
    assert "row digests equal" in copy["evidence"]  # digested right after the copy, beside the library sync
    assert _database_check(root, first["operation"])["source"] == BY_TOKENS  # so the verify reads no row
    assert (root / "state" / "envs" / "sync-staging-to-production" / "databases.json").is_file()

    code, again = mobius.json(*PROMOTE, "-w", str(root))
    assert code == 0 and again["plan"]["nothing_to_do"] is True and again["plan"]["database_identical"] is True
    check = _database_check(root, again["operation"])
    assert check["verdict"] == "pass" and check["source"] == BY_TOKENS

    prod = root / "prod.db"
    stat = prod.stat()
    db = sqlite3.connect(prod, isolation_level=None)
    db.execute("UPDATE games SET name = name || '!' WHERE rowid = (SELECT min(rowid) FROM games)")
    db.close()
    os.utime(prod, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as if within the clock's last tick
    assert table_rows(root, "production") != table_rows(root, "staging")

    code, third = mobius.json(*PROMOTE, "-w", str(root))
    assert code == 0, third
    assert third["plan"]["database_identical"] is False and third["plan"]["nothing_to_do"] is False
    assert {s["step"]: s["status"] for s in third["steps"]}["database copy"] == "done"
    assert table_rows(root, "production") == table_rows(root, "staging")
    assert "row digests equal" in next(s for s in third["steps"] if s["step"] == "database copy")["evidence"]
