"""Consistency checks: the runbook's `COUNT(*)` against `COUNT(DISTINCT id)`, for every table, and more.

For each table: no duplicate primary key (a table that lost its primary key in a botched rebuild
is checked on its `id` column), no foreign key pointing at a missing row; on SQLite also
`PRAGMA integrity_check` and `PRAGMA foreign_key_check`. Read-only.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect
from sqlalchemy.engine.reflection import Inspector

from mobius.db.engine import DatabaseTarget, connect
from mobius.results import Check, Report, at_most, failed, passed, skipped

SOURCE = "mobius db check"


def _q(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def check(target: DatabaseTarget) -> Report:
    """Every table's key uniqueness and references, and SQLite's own integrity checks, one Check each.

    A table without a primary key is checked on its `id` column (said in the check's detail); one with
    neither is a skipped uniqueness check, never a silent pass. Observed values are row counts.
    """
    report = Report(f"db check {target.display}")
    with connect(target) as conn, conn.begin():
        inspector = inspect(conn)
        for name in sorted(inspector.get_table_names()):
            report.extend(_table_checks(conn, inspector, name))
        if target.is_sqlite:
            report.extend(_sqlite_checks(conn))
    return report


def _table_checks(conn: Connection, inspector: Inspector, name: str) -> list[Check]:
    columns = [c["name"] for c in inspector.get_columns(name)]
    key = inspector.get_pk_constraint(name).get("constrained_columns") or []
    note = ""
    if not key and "id" in columns:
        key, note = ["id"], "no primary key constraint; checked its id column"
    table = _q(conn, name)
    rows = conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar() or 0
    checks: list[Check] = []
    if key:
        cols = ", ".join(_q(conn, c) for c in key)
        distinct = conn.exec_driver_sql(
            f"SELECT COUNT(*) FROM (SELECT DISTINCT {cols} FROM {table} "
            f"WHERE {' AND '.join(f'{_q(conn, c)} IS NOT NULL' for c in key)}) AS k").scalar() or 0
        detail = (f"{name}: {rows} rows but {distinct} distinct {'/'.join(key)} "
                  f"({rows - distinct} duplicate or missing keys)" if distinct != rows
                  else f"{name}: {rows} rows, keys unique")
        checks.append(at_most(f"{name}.keys", rows - distinct, 0, unit="duplicate or missing keys", source=SOURCE,
                              detail="; ".join(filter(None, [detail, note]))))
    else:
        checks.append(skipped(f"{name}.keys", f"{name}: no primary key and no id column; uniqueness not checked",
                              source=SOURCE))
    orphans, details = 0, []
    for fk in inspector.get_foreign_keys(name):
        parent, local, remote = fk["referred_table"], fk["constrained_columns"], fk["referred_columns"]
        join = " AND ".join(f"p.{_q(conn, r)} = c.{_q(conn, lc)}" for lc, r in zip(local, remote, strict=True))
        present = " AND ".join(f"c.{_q(conn, lc)} IS NOT NULL" for lc in local)
        count = conn.exec_driver_sql(
            f"SELECT COUNT(*) FROM {table} c WHERE {present} AND NOT EXISTS "
            f"(SELECT 1 FROM {_q(conn, parent)} p WHERE {join})").scalar() or 0
        if count:
            orphans += count
            details.append(f"{name}: {count} rows whose {'/'.join(local)} has no row in {parent}")
    checks.append(at_most(f"{name}.references", orphans, 0, unit="rows", source=SOURCE,
                          detail="; ".join(details) or f"{name}: {rows} rows, references intact"))
    return checks


def _sqlite_checks(conn: Connection) -> list[Check]:
    integrity = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check").fetchall()]
    checks = [passed("sqlite.integrity_check", "ok", source="PRAGMA integrity_check") if integrity == ["ok"]
              else failed("sqlite.integrity_check", len(integrity), source="PRAGMA integrity_check",
                          detail="; ".join(integrity[:20]))]
    rows = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()[:20]
    checks.append(at_most("sqlite.foreign_key_check", len(rows), 0, unit="rows", source="PRAGMA foreign_key_check",
                          detail="; ".join(f"{r[0]} rowid {r[1]} references a missing row in {r[2]}" for r in rows)))
    return checks
