"""`mobius backup ...` on the snapshot repository: the real command in a subprocess."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from backup_support import snapshot
from repository_support import age


def test_snapshot_commands_end_to_end(sample_workspace: Path, mobius) -> None:
    ws = str(sample_workspace)
    library = sample_workspace / "uploads"
    age(library)
    code, first = mobius.json("backup", "create", "--snapshot", "-w", ws)
    assert code == 0 and first["kind"] == "snapshot" and first["verified"]
    assert first["new_files"] == first["files"] > 10 and "database/mobius.dump" in first["extras"]
    before = snapshot(library)
    code, second = mobius.json("backup", "create", "--snapshot", "-w", ws)
    assert code == 0 and second["parent"] == first["id"]
    library_files = first["files"] - len(first["extras"])
    assert second["reused_files"] >= library_files and second["read_files"] <= len(second["extras"])

    code, listed = mobius.json("backup", "list", "-w", ws)
    assert [s["id"] for s in listed["snapshots"]] == [second["id"], first["id"]]
    assert listed["snapshots"][1]["new_bytes"] == first["new_bytes"] and listed["backups"] == []

    code, checked = mobius.json("backup", "verify", "-w", ws)
    assert code == 0 and checked["ok"] and len(checked["snapshots"]) == 2
    code, checked = mobius.json("backup", "verify", first["id"][:18], "--read-data", "-w", ws)
    assert code == 0 and checked["packs_read"] >= 1 and checked["snapshots"] == [first["id"]]

    code, tested = mobius.json("backup", "test-restore", first["id"], "-w", ws)
    assert code == 0 and tested["ok"] and tested["files"] == library_files

    (library / "sushi-go" / "stray.txt").write_text("added after the backup")
    proc = mobius("backup", "restore", first["id"], "--to", str(library), "--yes", "-w", ws)
    assert proc.returncode == 0, proc.stderr
    assert snapshot(library) == before
    assert len(list(sample_workspace.glob("uploads.rollback.*"))) == 1

    out = sample_workspace / "export" / "one.tar.zst"
    code, exported = mobius.json("backup", "export", first["id"], "--out", str(out), "-w", ws)
    assert code == 0 and Path(exported["path"]) == out
    check = subprocess.run(["sha256sum", "-c", "one.tar.zst.sha256"], cwd=out.parent, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    code, verified = mobius.json("backup", "verify", str(out), "-w", ws)
    assert code == 0 and verified["files"] == first["files"]

    code, pruned = mobius.json("backup", "prune", "--keep-last", "1", "-w", ws)
    assert code == 0 and pruned["removed"] == [first["id"]] and pruned["kept"] == [second["id"]]
    code, checked = mobius.json("backup", "verify", "--read-data", "-w", ws)
    assert code == 0 and checked["snapshots"] == [second["id"]]
    assert [p.name for p in (sample_workspace / "backups").glob(".mobius-tmp-*")] == []


def test_snapshot_restore_with_database_brings_the_rows_back(sample_workspace: Path, mobius) -> None:
    ws = str(sample_workspace)
    code, made = mobius.json("backup", "create", "--snapshot", "-w", ws)
    assert code == 0
    db = sample_workspace / "mobius.db"

    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                  if not r[0].startswith(("schema_", "sqlite_"))]  # a restore records itself in schema_*
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        emptied = max(tables, key=counts.get)
        conn.execute(f'DELETE FROM "{emptied}"')
    proc = mobius("backup", "restore", made["id"], "--to", str(sample_workspace / "uploads"), "--database", "--yes",
                  "-w", ws)
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(db) as conn:
        assert counts[emptied] > 0
        assert {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables} == counts


def test_bad_snapshot_input_is_one_line_and_exit_1(sample_workspace: Path, mobius) -> None:
    ws = str(sample_workspace)
    for args in (["backup", "export", "20991231T000000Z", "--out", "x.tar.zst"],
                 ["backup", "prune"],
                 ["backup", "prune", "--keep-last", "-1"]):
        proc = mobius(*args, "-w", ws)
        assert proc.returncode == 1, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.strip()
    proc = mobius("backup", "test-restore", "20991231T000000Z-abcdef", "-w", ws)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


def test_a_snapshot_with_a_missing_pack_fails_verify_with_exit_2(sample_workspace: Path, mobius) -> None:
    ws = str(sample_workspace)
    code, made = mobius.json("backup", "create", "--snapshot", "-w", ws)
    next((sample_workspace / "backups" / "packs").rglob("*.tar.zst")).unlink()
    proc = mobius("backup", "verify", made["id"], "-w", ws)
    assert proc.returncode == 2 and "missing: pack" in proc.stderr


def test_verify_without_an_archive_or_snapshots_says_what_to_do(sample_workspace: Path, mobius) -> None:
    proc = mobius("backup", "verify", "-w", str(sample_workspace))
    assert proc.returncode == 1 and "no snapshots" in proc.stderr and "Traceback" not in proc.stderr
