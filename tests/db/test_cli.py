"""The real `mobius db` command in subprocesses: concurrent runners, a killed backfill, drift, rehearsal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mobius import db
from mobius.db.engine import target_for
from mobius.db.lock import migration_lock

from .conftest import query, schema_snapshot, write_migration
from .test_migrate import ADD_COLUMN_THEN_FAIL, ADD_DESIGNER, history_rows, seed_games

PHASED_TOUCH = """-- 0004: count how often each row is touched; the verify proves every row was updated exactly once.
-- migrate:up
ALTER TABLE games ADD COLUMN touched INTEGER NOT NULL DEFAULT 0;
-- migrate:backfill table=games key=id batch={batch}
UPDATE games SET touched = touched + 1 WHERE id >= :lo AND id < :hi;
-- migrate:down
ALTER TABLE games DROP COLUMN touched;
-- migrate:verify
SELECT COUNT(*) FROM games WHERE touched <> 1;
"""


def start_migrate(ws, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    full_env.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "mobius", "db", "migrate", "-w", str(ws.root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env=full_env)


def migrated_workspace(db_workspace, games: int, **settings):
    ws = db_workspace(**settings)
    db.migrate_database(ws, backup=False)
    seed_games(ws, games)
    return ws


@pytest.mark.slow
def test_two_concurrent_migrate_processes_never_both_apply(db_workspace):
    ws = migrated_workspace(db_workspace, 12, db_backfill_pause_ms=150)
    write_migration(ws, "0004_touch.sql", PHASED_TOUCH.format(batch=2))
    runners = [start_migrate(ws, "--no-backup", "--json") for _ in range(2)]
    outputs = [(p.wait(timeout=120), *p.communicate()) for p in runners]
    codes = [code for code, _, _ in outputs]
    assert all(code == 0 for code in codes), outputs
    applied_counts = [len(json.loads(out)["applied"]) for _, out, _ in outputs]
    assert sorted(applied_counts) == [0, 1]
    assert [e["event"] for e in db.migration_events(ws, version=4)].count("apply") == 1
    assert query(ws, "SELECT COUNT(*) FROM games WHERE touched <> 1") == [(0,)]


def test_a_second_runner_gives_up_after_the_lock_wait(db_workspace, mobius):
    ws = migrated_workspace(db_workspace, 1, db_advisory_lock_wait_s=0.5)
    write_migration(ws, "0004_add_designer.sql", ADD_DESIGNER)
    with migration_lock(target_for(ws), wait_s=1):
        proc = mobius("db", "migrate", "--no-backup", "-w", str(ws.root))
    assert proc.returncode == 1, proc.stderr
    assert "another" in proc.stderr and "lock" in proc.stderr and "Traceback" not in proc.stderr
    assert db.database_status(ws).current_version == 3


@pytest.mark.slow
def test_phased_backfill_resumes_after_kill_9(db_workspace, mobius):
    ws = migrated_workspace(db_workspace, 40)
    write_migration(ws, "0004_touch.sql", PHASED_TOUCH.format(batch=2))
    proc = start_migrate(ws, "--no-backup", env={"MOBIUS_DB_BACKFILL_PAUSE_MS": "150"})
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and done < 6:
        rows = query(ws, "SELECT rows_done FROM schema_migration_backfill WHERE version = 4")
        done = rows[0][0] if rows else 0
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert done >= 6, "the backfill never started"
    status = query(ws, "SELECT status, phase FROM schema_migrations WHERE version = 4")
    assert status == [("in_progress", "backfill")]
    half = query(ws, "SELECT COUNT(*) FROM games WHERE touched = 1")[0][0]
    assert 0 < half < 40
    resumed = mobius("db", "migrate", "--no-backup", "-w", str(ws.root))
    assert resumed.returncode == 0, resumed.stderr
    assert query(ws, "SELECT touched, COUNT(*) FROM games GROUP BY touched") == [(1, 40)]  # nothing updated twice
    assert query(ws, "SELECT status, phase FROM schema_migrations WHERE version = 4") == [("applied", "done")]
    events = [e["event"] for e in db.migration_events(ws, version=4)]
    assert events[0] == "up-committed" and "resume" in events and events[-1] == "apply"


def test_changed_applied_file_is_caught_and_can_be_accepted(db_workspace, mobius):
    ws = migrated_workspace(db_workspace, 2)
    path = write_migration(ws, "0004_add_designer.sql", ADD_DESIGNER)
    db.migrate_database(ws, backup=False)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))  # line endings alone are not drift
    assert mobius("db", "validate", "-w", str(ws.root)).returncode == 0
    path.write_text(ADD_DESIGNER.replace("'unknown'", "'nobody'"))
    validate = mobius("db", "validate", "-w", str(ws.root))
    assert validate.returncode == 2 and "0004_add_designer: checksum changed" in validate.stderr
    write_migration(ws, "0005_more.sql", ADD_DESIGNER.replace("designer", "artist"))
    refused = mobius("db", "migrate", "--no-backup", "-w", str(ws.root))
    assert refused.returncode == 2 and "refused" in refused.stderr
    assert db.database_status(ws).current_version == 4
    code, accepted = mobius.json("db", "accept-checksum", "4", "--reason", "backfill value renamed", "-w",
                                 str(ws.root))
    assert code == 0 and accepted["changed"] is True
    assert mobius("db", "validate", "-w", str(ws.root)).returncode == 0
    event = db.migration_events(ws, version=4)[-1]
    assert event["event"] == "accept-checksum" and "backfill value renamed" in event["detail"]


def test_rehearse_leaves_the_real_database_untouched(db_workspace, mobius, engine, request):
    ws = migrated_workspace(db_workspace, 3)
    write_migration(ws, "0004_add_designer.sql", ADD_DESIGNER)
    before = (schema_snapshot(ws), history_rows(ws), query(ws, "SELECT * FROM games ORDER BY id"))
    asked = mobius("db", "migrate", "--rehearse", "-w", str(ws.root))  # no --yes, no terminal: refuses to go on
    assert asked.returncode == 1, asked.stderr
    assert "rehearsed 0004_add_designer on a copy" in asked.stdout and "needs confirmation" in asked.stderr
    assert (schema_snapshot(ws), history_rows(ws), query(ws, "SELECT * FROM games ORDER BY id")) == before
    write_migration(ws, "0005_broken.sql", ADD_COLUMN_THEN_FAIL.replace("designer", "artist"))
    failed = mobius("db", "migrate", "--rehearse", "--yes", "-w", str(ws.root))
    assert failed.returncode == 2 and "rehearsal failed" in failed.stderr
    assert (schema_snapshot(ws), history_rows(ws), query(ws, "SELECT * FROM games ORDER BY id")) == before
    assert not any(p.name.startswith(".mobius-rehearsal-") for p in ws.state.iterdir())
    if engine == "postgresql":
        server = request.getfixturevalue("postgres")
        names = query(ws, "SELECT datname FROM pg_database WHERE datname LIKE '%rehearsal%'")
        assert names == [], server.url()
    (ws.migrations / "0005_broken.sql").unlink()
    applied = mobius("db", "migrate", "--rehearse", "--yes", "-w", str(ws.root))
    assert applied.returncode == 0, applied.stderr
    assert db.database_status(ws).current_version == 4


def test_dry_run_prints_the_sql_and_changes_nothing(db_workspace, mobius):
    ws = db_workspace()
    proc = mobius("db", "migrate", "--dry-run", "-w", str(ws.root))
    assert proc.returncode == 0, proc.stderr
    assert "ALTER TABLE games ADD COLUMN complexity_rating INTEGER" in proc.stdout or "games_new" in proc.stdout
    assert "SELECT COUNT(*) FROM games WHERE complexity_rating IS NULL;" in proc.stdout
    assert schema_snapshot(ws) == {}
    assert not list(Path(ws.backups).iterdir())


def test_init_sample_seeds_the_three_games_and_their_assets(sample_workspace: Path, mobius):
    code, status = mobius.json("db", "status", "-w", str(sample_workspace))
    assert code == 0 and status["current_version"] == 3 and status["pending"] == []
    from mobius.config import load_workspace
    from mobius.safety.hashing import sha256_file

    ws = load_workspace(sample_workspace)
    games = query(ws, "SELECT slug, play_time, min_players, max_players, complexity_rating FROM games ORDER BY slug")
    assert games == [("hanamikoji", 15, 2, 2, 1), ("love-letter", 20, 2, 4, 1), ("sushi-go", 15, 2, 5, 1)]
    library = ws.library_path
    files = {p.relative_to(library).as_posix() for p in library.glob("*/**/*") if p.is_file()}
    assets = query(ws, "SELECT path, kind, size_bytes, sha256 FROM media_assets")
    assert {a[0] for a in assets} == files
    for path, _kind, size, digest in assets[:5]:
        assert (library / path).stat().st_size == size and sha256_file(library / path) == digest
    kinds = {a[0]: a[1] for a in assets}
    assert kinds["sushi-go/cards/tempura.png"] == "card" and kinds["hanamikoji/clips/setup.mp4"] == "clip"
    assert kinds["love-letter/boards/reference card.jpg"] == "board"
    assert mobius("db", "check", "-w", str(sample_workspace)).returncode == 0
    assert mobius("db", "verify", "-w", str(sample_workspace)).returncode == 0
