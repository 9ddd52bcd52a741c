"""db.changes.change_token: equal tokens prove nothing was written in between; a change always moves the token,
within the same second too (mtime put back: the file change counter and the ctime still move it)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from tests.db.conftest import query

from mobius.db.changes import change_token
from mobius.db.engine import connect, target_for


def _sqlite_db(path: Path) -> Path:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE games (slug TEXT PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO games VALUES ('sushi-go', 'Sushi Go')")
    db.close()
    return path


def _target(path: Path):
    from mobius.db.engine import DatabaseTarget, normalize_url

    return DatabaseTarget(normalize_url(f"sqlite:///{path}"))


def test_sqlite_token_stays_through_reads_and_moves_on_a_write_in_the_same_second(tmp_path: Path) -> None:
    path = _sqlite_db(tmp_path / "game.db")
    target = _target(path)
    before = change_token(target)
    assert before is not None and before == change_token(target)
    with connect(target) as conn, conn.begin():  # Mobius's own reads take BEGIN IMMEDIATE: still no write
        assert conn.exec_driver_sql("SELECT count(*) FROM games").scalar() == 1
    assert change_token(target) == before
    stat = path.stat()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE games SET name = 'Sushi Go!' WHERE slug = 'sushi-go'")  # same size, same second
    db.close()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # a clock too coarse to see it: mtime as before
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    after = change_token(target)
    assert after is not None and after != before
    assert after.rsplit(":", 1)[1] != before.rsplit(":", 1)[1]  # the header's change counter moved


def test_sqlite_token_moves_when_the_file_is_replaced_by_an_identical_copy(tmp_path: Path) -> None:
    path = _sqlite_db(tmp_path / "game.db")
    before = change_token(_target(path))
    shutil.copy2(path, tmp_path / "copy.db")
    os.replace(tmp_path / "copy.db", path)  # a restore renames a new file in: same bytes, same counter
    assert change_token(_target(path)) != before


def test_sqlite_gives_no_proof_in_wal_mode_or_with_a_journal_or_a_writer(tmp_path: Path) -> None:
    path = _sqlite_db(tmp_path / "game.db")
    journal = Path(f"{path}-journal")
    journal.write_bytes(b"")
    assert change_token(_target(path)) is None
    journal.unlink()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")  # a commit under way: no shared lock at once, so no token
    try:
        assert change_token(_target(path)) is None
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    assert change_token(_target(path)) is None
    assert change_token(_target(tmp_path / "missing.db")) == "sqlite:absent"


@pytest.mark.postgres
def test_postgres_token_stays_through_reads_and_moves_on_a_write(pg_url: str, tmp_path: Path) -> None:
    from tests.db.conftest import make_workspace

    ws = make_workspace(tmp_path / "ws", pg_url)
    query(ws, "CREATE TABLE games (slug TEXT PRIMARY KEY, name TEXT)")
    query(ws, "INSERT INTO games VALUES ('sushi-go', 'Sushi Go')")
    target = target_for(ws)
    # reads commit nothing; other tests share the server and commit, so one quiet moment is enough to see it
    for _ in range(20):
        before = change_token(target)
        assert before is not None
        assert query(ws, "SELECT count(*) FROM games") == [(1,)]
        if change_token(target) == before:
            break
    else:
        pytest.fail("the token moved across every read")
    before = change_token(target)
    query(ws, "UPDATE games SET name = 'Sushi Go!'")
    assert change_token(target) not in (None, before)
    query(ws, "CREATE UNLOGGED TABLE scratch (x int)")  # its writes leave no WAL, but need a transaction id
    assert change_token(target) is not None


def test_postgres_token_stays_through_a_first_dump_after_a_restore_and_moves_on_a_commit(
        pg_url: str, tmp_path: Path) -> None:
    """A dump and reads commit nothing, though the first pg_dump of a restored database writes catalog-pruning WAL
    (the WAL position, the token before, moved with it: a promote's proof right after its copy needed a warm-up
    read of every table); a committed write always moves it."""
    from tests.db.conftest import make_workspace

    from mobius.db.dump import dump

    ws = make_workspace(tmp_path / "ws", pg_url)
    query(ws, "DROP SCHEMA public CASCADE")
    query(ws, "CREATE SCHEMA public")
    query(ws, "CREATE TABLE games (slug TEXT PRIMARY KEY, name TEXT)")
    query(ws, "INSERT INTO games VALUES ('sushi-go', 'Sushi Go')")
    target = target_for(ws)
    for attempt in range(20):  # other tests share the server and commit: one quiet moment is enough to see it
        before = change_token(target)
        assert before is not None
        dump(target, tmp_path / f"games-{attempt}.pgdump")
        assert query(ws, "SELECT count(*) FROM games") == [(1,)]
        if change_token(target) == before:
            break
    else:
        pytest.fail("the token moved across every dump")
    query(ws, "UPDATE games SET name = 'Sushi Go!'")
    assert change_token(target) not in (None, before)
