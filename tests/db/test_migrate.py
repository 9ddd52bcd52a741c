"""Migrations on real SQLite and PostgreSQL databases, through the library (both engines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobius import db
from mobius.errors import InputError, OperationTimeout, VerificationError

from .conftest import query, schema_snapshot, write_migration

ADD_COLUMN_THEN_FAIL = """-- migrate:up
ALTER TABLE games ADD COLUMN designer TEXT;
UPDATE games SET designer = 'Phil Walker-Harding';
INSERT INTO no_such_table VALUES (1);
-- migrate:down
ALTER TABLE games DROP COLUMN designer;
-- migrate:verify
SELECT COUNT(*) FROM games WHERE designer IS NULL;
"""

ADD_COLUMN_FAILING_VERIFY = """-- migrate:up
ALTER TABLE games ADD COLUMN designer TEXT;
UPDATE games SET designer = 'Seiji Kanai' WHERE slug = 'love-letter';
-- migrate:down
ALTER TABLE games DROP COLUMN designer;
-- migrate:verify
SELECT COUNT(*) FROM games WHERE designer IS NULL;
"""

ADD_DESIGNER = """-- migrate:up
ALTER TABLE games ADD COLUMN designer TEXT;
UPDATE games SET designer = 'unknown';
-- migrate:down
ALTER TABLE games DROP COLUMN designer;
-- migrate:verify
SELECT COUNT(*) FROM games WHERE designer IS NULL;
"""


def seed_games(ws, n: int = 3) -> None:
    for i in range(n):
        query(ws, "INSERT INTO games (slug, name, play_time, min_players, max_players) "
                  "VALUES (:slug, :name, :t, 2, 4)", {"slug": f"game-{i}", "name": f"Game {i}", "t": 10 + 20 * i})


def history_rows(ws) -> list[tuple]:
    return query(ws, "SELECT version, name, checksum, status, phase FROM schema_migrations ORDER BY version")


def test_up_down_up_gives_the_same_schema(db_workspace):
    ws = db_workspace()
    db.migrate_database(ws, backup=False)
    first = schema_snapshot(ws, exclude_history=True)
    assert "complexity_rating" in [c[0] for c in first["games"]["columns"]]
    db.rollback_database(ws, to=0, confirm=lambda q: True)
    assert schema_snapshot(ws, exclude_history=True) == {}
    assert history_rows(ws) == []
    db.migrate_database(ws, backup=False)
    assert schema_snapshot(ws, exclude_history=True) == first
    events = [e["event"] for e in db.migration_events(ws)]
    assert events.count("apply") == 6 and events.count("rollback") == 3


def test_runbook_backfill_rates_games_by_play_time(db_workspace):
    ws = db_workspace()
    db.migrate_database(ws, to=1, backup=False)
    seed_games(ws, 4)  # 10, 30, 50, 70 minutes
    db.migrate_database(ws, backup=False)
    rows = query(ws, "SELECT play_time, complexity_rating FROM games ORDER BY play_time")
    assert rows == [(10, 1), (30, 2), (50, 2), (70, 3)]


def test_failing_statement_after_successful_alter_leaves_schema_and_history_unchanged(db_workspace):
    ws = db_workspace()
    db.migrate_database(ws, backup=False)
    seed_games(ws)
    schema, history = schema_snapshot(ws), history_rows(ws)
    data = query(ws, "SELECT * FROM games ORDER BY id")
    write_migration(ws, "0004_add_designer.sql", ADD_COLUMN_THEN_FAIL)
    with pytest.raises(VerificationError) as caught:
        db.migrate_database(ws, backup=False)
    assert "0004_add_designer.sql:4" in caught.value.message
    assert schema_snapshot(ws) == schema
    assert history_rows(ws) == history
    assert query(ws, "SELECT * FROM games ORDER BY id") == data
    assert [e["event"] for e in db.migration_events(ws, version=4)] == ["failed"]


def test_failing_verify_leaves_schema_and_history_unchanged(db_workspace):
    ws = db_workspace()
    db.migrate_database(ws, backup=False)
    seed_games(ws)
    schema, history = schema_snapshot(ws), history_rows(ws)
    write_migration(ws, "0004_add_designer.sql", ADD_COLUMN_FAILING_VERIFY)
    with pytest.raises(VerificationError) as caught:
        db.migrate_database(ws, backup=False)
    assert "verify" in caught.value.message and "returned 3" in caught.value.message
    assert schema_snapshot(ws) == schema
    assert history_rows(ws) == history
    assert db.database_status(ws).current_version == 3


def test_dump_and_restore_round_trip(db_workspace, tmp_path: Path):
    ws = db_workspace()
    db.migrate_database(ws, backup=False)
    seed_games(ws)
    before_rows = query(ws, "SELECT id, slug, play_time, complexity_rating FROM games ORDER BY id")
    schema = schema_snapshot(ws)
    dump = db.dump_database(ws, tmp_path / "saved.dump")
    assert dump.is_file() and dump.with_name(dump.name + ".sha256").is_file()
    query(ws, "DELETE FROM games WHERE slug = 'game-1'")
    write_migration(ws, "0004_add_designer.sql", ADD_DESIGNER)
    db.migrate_database(ws, backup=False)
    db.restore_database(ws, dump)
    assert query(ws, "SELECT id, slug, play_time, complexity_rating FROM games ORDER BY id") == before_rows
    assert schema_snapshot(ws) == schema
    assert db.database_status(ws).current_version == 3
    events = [e["event"] for e in db.migration_events(ws)]
    assert events[-1] == "restore" and "apply" in events  # the event log survives the restore
    assert any(p.name.startswith("mobius_db_") and "prerestore" in p.name for p in ws.backups.iterdir())


def test_damaged_dump_is_refused_and_database_kept(db_workspace, tmp_path: Path):
    ws = db_workspace()
    db.migrate_database(ws, backup=False)
    seed_games(ws)
    dump = db.dump_database(ws, tmp_path / "saved.dump")
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="checksum"):
        db.restore_database(ws, dump)
    assert len(query(ws, "SELECT id FROM games")) == 3


@pytest.mark.postgres
def test_restore_failing_midway_changes_nothing(pg_url, tmp_path: Path):
    """`pg_restore --list` reads only a dump's table of contents: a dump cut off after it passes that check, and
    pg_restore fails only midway through the restore. psql must then not commit what it was sent so far (the
    DROP SCHEMA, the empty tables); it did, and the error said "nothing was changed"."""
    import subprocess

    from mobius.db.engine import find_pg_tool

    from .conftest import make_workspace

    ws = make_workspace(tmp_path / "ws", pg_url)
    db.migrate_database(ws, backup=False)
    seed_games(ws)
    whole = db.dump_database(ws, tmp_path / "saved.dump").read_bytes()
    cut = tmp_path / "cut.dump"  # no sidecar: only the dump's own checks stand between it and the database

    def listed(size: int) -> bool:
        cut.write_bytes(whole[:size])
        return subprocess.run([find_pg_tool("pg_restore"), "--list", str(cut)], capture_output=True).returncode == 0

    low, high = 0, len(whole)  # the shortest prefix whose table of contents reads: no row data at all
    while high - low > 1:
        low, high = (low, (low + high) // 2) if listed((low + high) // 2) else ((low + high) // 2, high)
    assert listed(high) and high < len(whole)
    query(ws, "DELETE FROM games WHERE slug = 'game-1'")
    schema, rows = schema_snapshot(ws), query(ws, "SELECT id, slug FROM games ORDER BY id")
    with pytest.raises(VerificationError, match="nothing was changed"):
        db.restore_database(ws, cut, safety_dump=False)
    assert query(ws, "SELECT id, slug FROM games ORDER BY id") == rows
    assert schema_snapshot(ws) == schema


def test_check_finds_a_planted_duplicate_id(db_workspace):
    ws = db_workspace()
    db.migrate_database(ws, backup=False)
    seed_games(ws)
    assert db.check_database(ws).ok
    # A botched table rebuild that lost the primary key, then a duplicate id slipped in.
    for sql in ["CREATE TABLE games_copy AS SELECT * FROM games", "DROP TABLE media_assets", "DROP TABLE games",
                "ALTER TABLE games_copy RENAME TO games",
                "INSERT INTO games (id, slug, name, play_time, min_players, max_players) "
                "SELECT id, slug || '-dup', name, play_time, min_players, max_players FROM games "
                "WHERE slug = 'game-0'"]:
        query(ws, sql)
    report = db.check_database(ws)
    assert not report.ok
    assert [c.name for c in report.failures()] == ["games.keys"]
    assert report.failures()[0].detail.startswith("games: 4 rows but 3 distinct id")


def test_check_finds_a_reference_to_a_missing_game(db_workspace):
    ws = db_workspace()
    db.migrate_database(ws, backup=False)
    seed_games(ws, 1)
    if ws.database_url.startswith("postgresql"):
        query(ws, "ALTER TABLE media_assets DROP CONSTRAINT media_assets_game_id_fkey")
        query(ws, "ALTER TABLE media_assets ADD CONSTRAINT media_assets_game_id_fkey FOREIGN KEY (game_id) "
                  "REFERENCES games (id) NOT VALID")
        query(ws, "ALTER TABLE media_assets DISABLE TRIGGER ALL")
    query(ws, "INSERT INTO media_assets (game_id, path, kind, size_bytes, sha256) "
              "VALUES (999, 'x/y.png', 'card', 1, :h)", {"h": "0" * 64})  # SQLite: foreign_keys is off here
    report = db.check_database(ws)
    assert any("media_assets: 1 rows whose game_id has no row in games" in c.detail for c in report.failures())


def test_irreversible_migration_rolls_back_by_restoring_its_dump(db_workspace):
    ws = db_workspace()
    db.migrate_database(ws, backup=False)
    seed_games(ws)
    write_migration(ws, "0004_drop_publisher.sql", """-- migrate:up
UPDATE games SET publisher = NULL;
DELETE FROM games WHERE slug = 'game-2';
-- migrate:irreversible
-- migrate:verify
SELECT COUNT(*) FROM games WHERE publisher IS NOT NULL;
""")
    query(ws, "UPDATE games SET publisher = 'Gamewright'")
    before = query(ws, "SELECT id, slug, publisher FROM games ORDER BY id")
    with pytest.raises(InputError, match="irreversible"):
        db.migrate_database(ws, backup=False)
    result = db.migrate_database(ws)
    assert result.applied[0].dump_path == str(result.dump.path)
    asked = []
    with pytest.raises(InputError, match="not confirmed"):
        db.rollback_database(ws, confirm=lambda q: asked.append(q) or "irreversible" not in q)
    assert db.database_status(ws).current_version == 4
    out = db.rollback_database(ws, confirm=lambda q: True)
    assert [o.status for o in out.rolled_back] == ["restored"]
    assert query(ws, "SELECT id, slug, publisher FROM games ORDER BY id") == before
    assert db.database_status(ws).current_version == 3


@pytest.mark.postgres
def test_lock_timeout_makes_a_blocked_migration_fail_fast(pg_url, tmp_path: Path):
    import psycopg

    from .conftest import make_workspace

    ws = make_workspace(tmp_path / "ws", pg_url, db_lock_timeout_ms=300)
    db.migrate_database(ws, backup=False)
    seed_games(ws)
    write_migration(ws, "0004_add_designer.sql", ADD_DESIGNER)
    history = history_rows(ws)
    with psycopg.connect(pg_url) as reader:  # a long report holding ACCESS SHARE on games
        reader.execute("SELECT COUNT(*) FROM games").fetchone()
        with pytest.raises(OperationTimeout) as caught:
            db.migrate_database(ws, backup=False)
        reader.rollback()
    assert "lock_timeout" in caught.value.message and caught.value.exit_code == 4
    assert history_rows(ws) == history
    db.migrate_database(ws, backup=False)  # once the long transaction ended, it applies
    assert db.database_status(ws).current_version == 4


def test_sync_copies_a_database_and_dumps_the_target_first(db_workspace, tmp_path: Path, engine, request):
    ws = db_workspace()
    db.migrate_database(ws, backup=False)
    seed_games(ws)
    if engine == "postgresql":
        server = request.getfixturevalue("postgres")
        target_url = server.url(server.create_database())
    else:
        target_url = f"sqlite:///{tmp_path / 'production.db'}"
    result = db.sync_databases(ws, ws.database_url, target_url)
    assert result.tables["games"] == 3
    with pytest.raises(InputError, match="not empty"):
        db.sync_databases(ws, ws.database_url, target_url)
    query(ws, "DELETE FROM games WHERE slug = 'game-0'")
    again = db.sync_databases(ws, ws.database_url, target_url, overwrite=True)
    assert again.tables["games"] == 2 and Path(again.target_dump).is_file()


PHASED_INDEX = """-- migrate:up
ALTER TABLE games ADD COLUMN popularity INTEGER;
-- migrate:backfill table=games key=id batch=2
UPDATE games SET popularity = play_time * 10 WHERE id >= :lo AND id < :hi;
-- migrate:no-transaction postgresql
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_games_popularity ON games (popularity);
-- migrate:no-transaction sqlite
CREATE INDEX IF NOT EXISTS idx_games_popularity ON games (popularity);
-- migrate:down
DROP INDEX IF EXISTS idx_games_popularity;
ALTER TABLE games DROP COLUMN popularity;
-- migrate:verify
SELECT COUNT(*) FROM games WHERE popularity IS NULL;
"""


def test_phased_migration_failing_late_is_recorded_then_resumed_or_rolled_back(db_workspace):
    ws = db_workspace()
    db.migrate_database(ws, backup=False)
    seed_games(ws, 5)
    schema = schema_snapshot(ws, exclude_history=True)
    broken = PHASED_INDEX.replace("ON games (popularity)", "ON games (no_such_column)")
    path = write_migration(ws, "0004_popularity.sql", broken)
    with pytest.raises(VerificationError, match="no-transaction"):
        db.migrate_database(ws, backup=False)
    assert query(ws, "SELECT status, phase FROM schema_migrations WHERE version = 4") == [("failed", "no-transaction")]
    assert query(ws, "SELECT COUNT(*) FROM games WHERE popularity IS NULL") == [(0,)]  # backfill committed
    path.write_text(PHASED_INDEX)  # fix the failing phase; the committed phases are not run again
    result = db.migrate_database(ws, backup=False)
    assert result.applied[0].phased and db.validate_database(ws).drift == []
    assert "idx_games_popularity" in [i[0] for i in schema_snapshot(ws)["games"]["indexes"]]
    db.rollback_database(ws, confirm=lambda q: True)
    assert schema_snapshot(ws, exclude_history=True) == schema
    assert query(ws, "SELECT COUNT(*) FROM schema_migration_backfill WHERE version = 4") == [(0,)]
