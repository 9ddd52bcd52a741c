"""Migration files: statement splitting, sections, checksums, discovery and `db new` numbering (no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobius.db.migration import discover, file_checksum, parse_migration, write_new_migration
from mobius.db.sqltext import split_statements
from mobius.errors import InputError

from .conftest import make_workspace


def sqls(text: str) -> list[str]:
    return [s.sql for s in split_statements(text)]


def test_semicolons_inside_strings_identifiers_and_comments_do_not_split():
    text = """
    INSERT INTO t (a) VALUES ('x;y'), ('it''s; fine');  -- a comment; with a semicolon
    /* block; comment */ UPDATE "odd;name" SET a = 1;
    SELECT 1
    """
    statements = sqls(text)
    assert len(statements) == 3
    assert statements[0].startswith("INSERT") and "UPDATE" in statements[1] and statements[2] == "SELECT 1"
    assert "'it''s; fine'" in sqls(text)[0]
    assert '"odd;name"' in sqls(text)[1]


def test_dollar_quoted_bodies_and_trigger_bodies_stay_whole():
    text = """
    CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $body$ BEGIN RETURN NEW; END; $body$;
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE u SET n = CASE WHEN n > 1 THEN 0 ELSE n END;
        INSERT INTO log VALUES (1);
    END;
    SELECT 2;
    """
    statements = sqls(text)
    assert len(statements) == 3
    assert statements[0].endswith("$body$")
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END")


def test_statement_line_numbers_point_into_the_file():
    statements = split_statements("-- c\nSELECT 1;\n\nSELECT\n 2;", first_line=10)
    assert [s.line for s in statements] == [11, 13]


def test_sections_dialect_variants_and_flags(tmp_path: Path):
    path = tmp_path / "0007_phased_thing.sql"
    path.write_text("""-- migrate:up
ALTER TABLE games ADD COLUMN x INTEGER;
-- migrate:up sqlite
ALTER TABLE games ADD COLUMN x INT;
-- migrate:backfill table=games key=id batch=500
UPDATE games SET x = 1 WHERE id >= :lo AND id < :hi;
-- migrate:no-transaction postgresql
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_x ON games (x);
-- migrate:verify
SELECT COUNT(*) FROM games WHERE x IS NULL;
-- migrate:irreversible
""")
    m = parse_migration(path)
    assert (m.version, m.name, m.irreversible) == (7, "phased_thing", True)
    assert m.statements("up", "sqlite")[0].sql.endswith("INT")
    assert m.statements("up", "postgresql")[0].sql.endswith("INTEGER")
    assert m.statements("no-transaction", "sqlite") == []
    assert m.is_phased("postgresql") and m.is_phased("sqlite")
    backfill = m.backfill("sqlite")
    assert (backfill.table, backfill.key, backfill.batch) == ("games", "id", 500)
    assert m.problems() == []


def test_checksum_ignores_line_ending_style_but_not_content():
    unix = b"-- migrate:up\nSELECT 1;\n"
    assert file_checksum(unix) == file_checksum(unix.replace(b"\n", b"\r\n"))
    assert file_checksum(unix) != file_checksum(unix.replace(b"1", b"2"))


@pytest.mark.parametrize("body, message", [
    ("-- migrate:up\nBEGIN;\nALTER TABLE t ADD c INT;\nCOMMIT;\n-- migrate:down\nSELECT 1;", "BEGIN in a migration"),
    ("SELECT 1;\n-- migrate:up\nSELECT 1;", "before the first"),
    ("-- migrate:up\nSELECT 1;\n-- migrate:sideways\nSELECT 1;", "unknown section"),
    ("-- migrate:up\nSELECT 1;\n-- migrate:backfill table=t\nUPDATE t SET a = 1;", ":lo and :hi"),
])
def test_malformed_files_are_refused_with_file_and_line(tmp_path: Path, body: str, message: str):
    path = tmp_path / "0003_bad.sql"
    path.write_text(body)
    with pytest.raises(InputError) as caught:
        parse_migration(path)
    assert message in caught.value.message and "0003_bad.sql" in caught.value.message


def test_new_migration_takes_the_next_number_after_builtin_and_workspace_files(tmp_path: Path):
    ws = make_workspace(tmp_path / "ws", None)
    first = write_new_migration(ws, "Add publisher URL")
    assert first.name == "0004_add_publisher_url.sql"
    assert "-- migrate:up" in first.read_text() and "-- migrate:verify" in first.read_text()
    second = write_new_migration(ws, "second")
    assert second.name == "0005_second.sql"
    found = discover(ws)
    assert [m.version for m in found] == [1, 2, 3, 4, 5]
    assert found[3].problems()  # an unedited template is listed but not applicable


def test_a_version_defined_twice_is_refused(tmp_path: Path):
    ws = make_workspace(tmp_path / "ws", None)
    ws.migrations.mkdir()
    (ws.migrations / "0002_mine.sql").write_text("-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 1;\n")
    with pytest.raises(InputError, match="defined twice"):
        discover(ws)


def test_missing_pg_dump_is_an_environment_problem(monkeypatch: pytest.MonkeyPatch):
    from mobius.db import engine
    from mobius.errors import EnvironmentProblem

    monkeypatch.setattr(engine.glob, "glob", lambda pattern: [])
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EnvironmentProblem) as caught:
        engine.find_pg_tool("pg_dump")
    assert caught.value.exit_code == 3 and "pg_dump" in caught.value.message


@pytest.mark.parametrize("value, ok", [(0, True), (True, True), (1, False), (False, False), (None, False),
                                       ("0", False), (2.0, False)])
def test_verify_passes_only_on_zero_or_true(value, ok):
    from decimal import Decimal

    from mobius.db.runner import verify_value_ok

    assert verify_value_ok(value) is ok
    assert verify_value_ok(Decimal(0)) is True
