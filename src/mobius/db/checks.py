"""Consistency checks: the runbook's `COUNT(*)` against `COUNT(DISTINCT id)`, for every table, and more.

For each table: no duplicate primary key (a table that lost its primary key in a botched rebuild
is checked on its `id` column), no foreign key pointing at a missing row; on SQLite also
`PRAGMA integrity_check` and `PRAGMA foreign_key_check`. Read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, inspect

from mobius.db.engine import DatabaseTarget, connect


@dataclass
class CheckReport:
    database: str
    tables: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"database": self.database, "consistent": self.ok, "tables": self.tables,
                "problems": self.problems, "warnings": self.warnings}


def _q(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def check(target: DatabaseTarget) -> CheckReport:
    """Every table's key uniqueness and references; SQLite's own integrity checks."""
    report = CheckReport(target.display)
    with connect(target) as conn, conn.begin():
        inspector = inspect(conn)
        for name in sorted(inspector.get_table_names()):
            columns = [c["name"] for c in inspector.get_columns(name)]
            key = inspector.get_pk_constraint(name).get("constrained_columns") or []
            entry: dict[str, Any] = {"table": name, "key": key}
            if not key:
                if "id" in columns:
                    key = ["id"]
                    report.warnings.append(f"{name}: no primary key constraint; checked its id column")
                else:
                    report.warnings.append(f"{name}: no primary key and no id column; uniqueness not checked")
            table = _q(conn, name)
            rows = conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar() or 0
            entry["rows"] = rows
            if key:
                cols = ", ".join(_q(conn, c) for c in key)
                distinct = conn.exec_driver_sql(
                    f"SELECT COUNT(*) FROM (SELECT DISTINCT {cols} FROM {table} "
                    f"WHERE {' AND '.join(f'{_q(conn, c)} IS NOT NULL' for c in key)}) AS k").scalar() or 0
                entry["distinct_keys"] = distinct
                if distinct != rows:
                    report.problems.append(f"{name}: {rows} rows but {distinct} distinct {'/'.join(key)} "
                                           f"({rows - distinct} duplicate or missing keys)")
            orphans = 0
            for fk in inspector.get_foreign_keys(name):
                parent, local, remote = fk["referred_table"], fk["constrained_columns"], fk["referred_columns"]
                join = " AND ".join(f"p.{_q(conn, r)} = c.{_q(conn, lc)}" for lc, r in zip(local, remote, strict=True))
                present = " AND ".join(f"c.{_q(conn, lc)} IS NOT NULL" for lc in local)
                count = conn.exec_driver_sql(
                    f"SELECT COUNT(*) FROM {table} c WHERE {present} AND NOT EXISTS "
                    f"(SELECT 1 FROM {_q(conn, parent)} p WHERE {join})").scalar() or 0
                if count:
                    orphans += count
                    report.problems.append(f"{name}: {count} rows whose {'/'.join(local)} has no row in {parent}")
            entry["orphans"] = orphans
            report.tables.append(entry)
        if target.is_sqlite:
            integrity = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check").fetchall()]
            if integrity != ["ok"]:
                report.problems += [f"integrity_check: {line}" for line in integrity[:20]]
            for row in conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()[:20]:
                problem = f"foreign_key_check: {row[0]} rowid {row[1]} references a missing row in {row[2]}"
                if problem not in report.problems:
                    report.problems.append(problem)
    return report
