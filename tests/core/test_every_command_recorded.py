"""Every command that changes something is an operation in `mobius history`: a new command must be
classified here (recorded with its type, or read-only), so one added without a record fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.core.test_cli_options import CHANGING

# commands marked @changes that write only a new file the user asked for, or a workspace that does not exist
# yet (no record store): not operations
NOT_AN_OPERATION = {
    "backup export": "writes the export file named by --out",
    "db dump": "writes the dump file named by --out",
    "db new": "writes a new migration file to edit",
    "demo": "builds a demo workspace",
    "init": "creates the workspace (and its record store)",
    "media manifest": "writes the manifest file",
    "render": "writes previews under out/ (a run of several games is recorded by the executor)",
}
# every other command marked @changes, and the type of the operation it records
RECORDED = {
    "backup copy": "backup.copy", "backup create": "backup.snapshot", "backup prune": "backup.prune",
    "backup restore": "backup.restore", "config set": "config.set", "db accept-checksum": "db.accept-checksum",
    "db migrate": "db.migrate", "db restore": "db.restore", "db rollback": "db.rollback", "db sync": "db.sync",
    "deploy": "env.deploy", "env new": "env.new", "env promote": "env.promote", "golden approve": "golden.approve",
    "golden backup": "golden.backup", "golden generate": "golden.generate", "golden restore": "golden.restore",
    "golden update": "golden.approve", "golden upgrade": "golden.upgrade", "library hash": "library.hash",
    "library rehash": "library.rehash", "media finalize": "media.finalize", "media migrate": "media.migrate",
    "media rollback": "media.rollback", "migrate resume": "migrate.run", "migrate rollback": "migrate.run",
    "migrate run": "migrate.run", "rollback": "env.rollback",
}


def test_every_changing_command_is_recorded() -> None:
    unrecorded = set(CHANGING) - set(RECORDED) - set(NOT_AN_OPERATION)
    assert unrecorded == set(), "a command that changes something records an operation (records_call or the runner)"
    assert set(RECORDED) | set(NOT_AN_OPERATION) <= set(CHANGING)


def _types(mobius, root: Path) -> list[str]:
    """The types of the top-level operations (not those recorded inside another), newest first."""
    proc = mobius("history", "--limit", "500", "--json", "-w", str(root))
    assert proc.returncode == 0, proc.stderr
    return [op["type"] for op in json.loads(proc.stdout)["operations"] if not op.get("parent")]


@pytest.mark.slow
def test_the_commands_that_were_not_recorded_are_now(mobius, sample_workspace: Path) -> None:
    root = sample_workspace
    runs = [
        (("config", "set", "MOBIUS_BACKUP_KEEP", "7"), "config.set"),
        (("config", "set", "MOBIUS_API_TOKEN", "tok-5ecret-value"), "config.set"),
        (("db", "dump", "--out", str(root / "copy.sqlite3")), None),
        (("db", "restore", str(root / "copy.sqlite3"), "--yes"), "db.restore"),
        (("db", "sync", "--from", f"sqlite:///{root / 'mobius.db'}", "--to", f"sqlite:///{root / 'other.db'}",
          "--yes"), "db.sync"),
        (("backup", "create"), "backup.snapshot"),
        (("backup", "restore", "latest", "--to", str(root / "restored"), "--yes"), "backup.restore"),
        (("library", "hash"), "library.hash"),
        (("library", "rehash", "--to", "fast"), "library.rehash"),
        (("library", "rehash", "--rollback"), "library.rehash-rollback"),
        (("media", "migrate", "--to", str(root / "media-v2"), "--yes"), None),
        (("media", "finalize", "latest", "--yes"), "media.finalize"),
    ]
    for args, recorded_as in runs:
        proc = mobius(*args, "-w", str(root))
        assert proc.returncode == 0, (args, proc.stderr)
        if recorded_as:
            assert _types(mobius, root)[0] == recorded_as, args
    history = mobius("history", "--limit", "500", "--json", "-w", str(root)).stdout
    assert "tok-5ecret-value" not in history
    assert {RECORDED[c] for c in ("config set", "db restore", "db sync", "backup restore", "library rehash",
                                  "media finalize")} <= set(_types(mobius, root))
