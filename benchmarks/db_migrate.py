"""Benchmark: the runbook's 0002 migration on a games table of N rows (default 1,000,000), SQLite and PostgreSQL.

Two ways to run the same change:
  one-transaction  the shipped 0002: ALTERs, both indexes and the three UPDATEs in one transaction
                   (on PostgreSQL the ALTER's ACCESS EXCLUSIVE lock is held until the end)
  phased           the same intent written as a phased migration: the ALTERs commit alone, the backfill
                   runs in committed batches of 20,000 keys, the indexes are built with CREATE INDEX
                   CONCURRENTLY (plain CREATE INDEX on SQLite), then the verify query
On PostgreSQL a reader thread runs `SELECT ... FROM games WHERE id = <random>` in a loop during the
migration and records each query's latency: the longest is how long readers were blocked.

    python benchmarks/db_migrate.py                  # 1,000,000 rows, starts its own PostgreSQL
    python benchmarks/db_migrate.py --rows 50000     # quick
    python benchmarks/db_migrate.py --pg-url postgresql://user@host/db_admin   # use a server (needs CREATEDB)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine

from mobius.config import load_workspace
from mobius.db import migrate_database, migration_events
from mobius.db.engine import target_for
from mobius.db.migration import discover, parse_migration

PHASED_0002 = """-- 0002 written as a phased migration (same columns, indexes, backfill and check as the shipped one).
-- migrate:up
ALTER TABLE games ADD COLUMN complexity_rating INTEGER;
ALTER TABLE games ADD COLUMN last_updated TIMESTAMP DEFAULT CURRENT_TIMESTAMP;

-- migrate:up sqlite
CREATE TABLE games_new (
    id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    play_time INTEGER NOT NULL CHECK (play_time > 0), min_players INTEGER NOT NULL CHECK (min_players >= 1),
    max_players INTEGER NOT NULL, publisher TEXT, year_published INTEGER,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, complexity_rating INTEGER,
    last_updated TIMESTAMP DEFAULT CURRENT_TIMESTAMP, CHECK (max_players >= min_players)
);
INSERT INTO games_new (id, slug, name, play_time, min_players, max_players, publisher, year_published, created_at,
                       last_updated)
    SELECT id, slug, name, play_time, min_players, max_players, publisher, year_published, created_at,
           CURRENT_TIMESTAMP FROM games;
DROP TABLE games;
ALTER TABLE games_new RENAME TO games;

-- migrate:backfill table=games key=id batch=20000
UPDATE games SET complexity_rating = CASE WHEN play_time < 30 THEN 1
                                          WHEN play_time BETWEEN 30 AND 60 THEN 2
                                          WHEN play_time > 60 THEN 3 END
WHERE id >= :lo AND id < :hi AND complexity_rating IS NULL;

-- migrate:no-transaction postgresql
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_games_complexity ON games (complexity_rating);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_games_updated ON games (last_updated);

-- migrate:no-transaction sqlite
CREATE INDEX IF NOT EXISTS idx_games_complexity ON games (complexity_rating);
CREATE INDEX IF NOT EXISTS idx_games_updated ON games (last_updated);

-- migrate:down
DROP INDEX IF EXISTS idx_games_updated;
DROP INDEX IF EXISTS idx_games_complexity;
ALTER TABLE games DROP COLUMN last_updated;
ALTER TABLE games DROP COLUMN complexity_rating;

-- migrate:verify
SELECT COUNT(*) FROM games WHERE complexity_rating IS NULL;

-- migrate:verify postgresql
SELECT COUNT(*) FROM games WHERE complexity_rating IS NULL;
SELECT COUNT(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relname IN ('idx_games_complexity', 'idx_games_updated') AND NOT i.indisvalid;
"""


class ThrowawayPostgres:
    """initdb + pg_ctl in a temp folder on a free port (as the postgres user when run as root)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            sys.exit("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin; pass --pg-url")
        self.bindir = Path(found[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="mobius-bench-pg-"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]

    def _run(self, *args: object) -> None:
        command = [str(a) for a in args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=300)

    def start(self) -> str:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(self.bindir / "initdb", "-D", self.root / "data", "-U", "postgres", "-A", "trust", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB "
                   "-c max_wal_size=4GB")
        self._run(self.bindir / "pg_ctl", "-D", self.root / "data", "-o", options, "-l", self.root / "log", "-w",
                  "start")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        self._run(self.bindir / "pg_ctl", "-D", self.root / "data", "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class Reader(threading.Thread):
    """SELECT one game by random id in a loop; remembers every latency and when the slowest query started."""

    def __init__(self, url: str, rows: int):
        super().__init__(daemon=True)
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.rows = rows
        self.stop_flag = threading.Event()
        self.latencies: list[float] = []
        self.slowest = 0.0
        self.slowest_at = 0.0
        self.t0 = time.perf_counter()

    def run(self) -> None:
        rng = random.Random(7)
        while not self.stop_flag.is_set():
            started = time.perf_counter()
            self.conn.execute("SELECT id, name, play_time FROM games WHERE id = %s", (rng.randint(1, self.rows),))
            latency = time.perf_counter() - started
            if latency > self.slowest:
                self.slowest, self.slowest_at = latency, started
            self.latencies.append(latency)

    def finish(self) -> dict[str, float]:
        self.stop_flag.set()
        self.join()
        self.conn.close()
        ordered = sorted(self.latencies)
        return {"queries": len(ordered), "max_ms": round(ordered[-1] * 1000, 1),
                "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 2),
                "slowest_at_s": round(self.slowest_at - self.t0, 3)}


class LockWaitSampler(threading.Thread):
    """Polls pg_stat_activity for the reader's backend: the longest stretch it spent waiting on a lock."""

    def __init__(self, url: str, pid: int, interval: float = 0.002):
        super().__init__(daemon=True)
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.pid = pid
        self.interval = interval
        self.stop_flag = threading.Event()
        self.longest = 0.0

    def run(self) -> None:
        waiting_since = None
        while not self.stop_flag.is_set():
            now = time.perf_counter()
            kind = self.conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                     (self.pid,)).fetchone()
            if kind and kind[0] == "Lock":
                waiting_since = waiting_since or now
                self.longest = max(self.longest, now - waiting_since + self.interval)
            else:
                waiting_since = None
            time.sleep(self.interval)

    def finish(self) -> float:
        self.stop_flag.set()
        self.join()
        self.conn.close()
        return round(self.longest * 1000, 1)


def prepare(root: Path, url: str | None, rows: int):
    """A workspace whose database has 0001 applied and `rows` games."""
    root.mkdir(parents=True)
    (root / ".env").write_text(f"MOBIUS_DATABASE_URL={url}\n" if url else "")
    ws = load_workspace(root)
    migrate_database(ws, to=1, backup=False)
    engine = create_engine(target_for(ws).url)
    series = ("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) SELECT i FROM s"
              if url is None else "SELECT i FROM generate_series(1, :n) AS i")
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("INSERT INTO games (id, slug, name, play_time, min_players, max_players) "
                          "SELECT i, 'game-' || i, 'Game ' || i, 5 + ((i % 10007) * 7919) % 175, 2, 4 "
                          f"FROM ({series}) AS g"),
                     {"n": rows})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE games" if url else "ANALYZE")
    engine.dispose()
    return ws


def run_variant(ws, phased_file: Path | None, *, reader_url: str | None, rows: int) -> dict[str, object]:
    migrations = discover(ws)
    if phased_file is not None:
        migrations = [m for m in migrations if m.version != 2] + [parse_migration(phased_file)]
    reader = Reader(reader_url, rows) if reader_url else None
    sampler = LockWaitSampler(reader_url, reader.conn.info.backend_pid) if reader else None
    if reader and sampler:
        reader.start()
        sampler.start()
        time.sleep(0.3)
    started = time.perf_counter()
    if reader:
        reader.t0 = started
    migrate_database(ws, backup=False, migrations=migrations)
    total = time.perf_counter() - started
    result: dict[str, object] = {"total_s": round(total, 2)}
    if reader and sampler:
        result["reader"] = {**reader.finish(), "lock_wait_ms": sampler.finish()}
    up = [e for e in migration_events(ws, version=2) if e["event"] == "up-committed"]
    if up:
        result["alter_phase_ms"] = json.loads(up[-1]["detail"])["execution_ms"]
    return result


def bench_engine(name: str, url_for_fresh_db, rows: int, workdir: Path) -> dict[str, dict[str, object]]:
    results = {}
    phased_file = workdir / "0002_complexity_rating.sql"
    phased_file.write_text(PHASED_0002)
    for variant, phased in (("one-transaction", None), ("phased", phased_file)):
        url = url_for_fresh_db()
        t = time.perf_counter()
        ws = prepare(workdir / f"{name}-{variant}", url, rows)
        print(f"  {name} {variant}: {rows:,} rows ready in {time.perf_counter() - t:.1f} s, migrating...", flush=True)
        reader_url = target_for(ws).libpq_url if url else None
        results[variant] = run_variant(ws, phased, reader_url=reader_url, rows=rows)
        print(f"  {name} {variant}: {json.dumps(results[variant])}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg-url", help="an existing server (URL of a database to connect to; needs CREATEDB)")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mobius-bench-db-"))
    server = None
    report: dict[str, dict[str, dict[str, object]]] = {}
    try:
        if not args.skip_sqlite:
            report["sqlite"] = bench_engine("sqlite", lambda: None, args.rows, workdir)
        if not args.skip_postgres:
            admin_url = args.pg_url
            if admin_url is None:
                server = ThrowawayPostgres()
                admin_url = server.start()
            import psycopg

            def fresh_db() -> str:
                name = f"bench_{secrets.token_hex(4)}"
                with psycopg.connect(admin_url, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                return admin_url.rsplit("/", 1)[0] + "/" + name

            report["postgresql"] = bench_engine("postgresql", fresh_db, args.rows, workdir)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n0002 complexity_rating on {args.rows:,} games rows")
    print(f"{'engine':<11} {'variant':<16} {'total s':>8} {'reader max ms':>14} {'reader p99 ms':>14} "
          f"{'lock wait ms':>13} {'ALTER ms':>9}")
    for engine, variants in report.items():
        for variant, r in variants.items():
            reader = r.get("reader") or {}
            print(f"{engine:<11} {variant:<16} {r['total_s']:>8} {reader.get('max_ms', '-'):>14} "
                  f"{reader.get('p99_ms', '-'):>14} {reader.get('lock_wait_ms', '-'):>13} "
                  f"{r.get('alter_phase_ms', '-'):>9}")
        one, phased = variants["one-transaction"], variants["phased"]
        print(f"{engine}: phased / one-transaction total time = {phased['total_s'] / one['total_s']:.2f}x")
        if "reader" in one:
            ratio = one["reader"]["max_ms"] / max(phased["reader"]["max_ms"], 0.001)
            print(f"{engine}: slowest reader query, one-transaction / phased = {ratio:.0f}x "
                  f"({one['reader']['max_ms']} ms vs {phased['reader']['max_ms']} ms)")
            print(f"{engine}: longest lock wait seen by the reader: "
                  f"one-transaction {one['reader']['lock_wait_ms']} ms, "
                  f"phased {phased['reader']['lock_wait_ms']} ms (its ALTER phase took "
                  f"{phased.get('alter_phase_ms')} ms; lock waits sampled every 2 ms)")


if __name__ == "__main__":
    main()
