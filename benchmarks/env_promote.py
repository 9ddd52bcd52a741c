"""Benchmark: `mobius env promote` against the runbook's way (database dump piped into the target + `rsync -av`).

Both start from the same state in the same run: a staging library (media-like, incompressible
files) already promoted once, then 10% of its files rewritten. Timed: the promote of that change
(plan, verified backup of the target, database copy, journaled library sync that re-reads every
copied byte, settings, validate) vs `pg_dump | psql` (or `sqlite3 .dump | sqlite3` without
PostgreSQL binaries) + `rsync -av`; then both again with nothing changed.

    python benchmarks/env_promote.py                # 1 GB library
    python benchmarks/env_promote.py --size-mb 256  # quick
    python benchmarks/env_promote.py --compare-with /tmp/main/src   # each round also promoted by that mobius
    python benchmarks/env_promote.py --sqlite       # two SQLite databases (default: PostgreSQL when installed)
    MOBIUS_BENCH_DATA=/tmp/me-envs python benchmarks/env_promote.py   # its data folder (removed after)

Production is backed up once after the first promote (as its schedule would), so each promote's
restore point (a snapshot) stores only what changed; `--rounds` rounds of 10% changed are timed, each
promote followed by the runbook on the same change. Wall seconds and CPU seconds (user + system of the
child processes: what the machine's other load changes least) are both reported, as ratios.

With PostgreSQL and Debian's `restic` installed, each round also times the runbook done as a careful person
would do it by hand with the tools they would pick (`--no-guarded` leaves it out): a restore point of the
target first (`pg_dump` of its database to a file, fsynced, and `restic backup` of its library into a
repository that already holds a snapshot of it, as production's schedule would), then `pg_dump | psql` and
`rsync -av --fsync`. It has no re-read of the copied bytes and no proof of the restore point, so it is still
less than what `mobius env promote` does; it says what the target's guarantees cost in shell tools alone.

Mobius's modules are byte-compiled first, as `pip install` leaves an installed package: with
PYTHONDONTWRITEBYTECODE=1 (set on the shared machine) an editable checkout would otherwise compile
every module from source in every run, about 0.4 s of start-up an installed mobius never pays.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("MOBIUS_BENCH_DATA") or "/tmp/mobius-bench-envs")  # a private one on a shared machine
MOBIUS = [sys.executable, "-m", "mobius"]


def _load(name: str, path: Path):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def postgres_server():  # noqa: ANN201
    """The test suite's throwaway PostgreSQL cluster, or None when the server binaries are missing."""
    db = _load("bench_db_conftest", HERE.parent / "tests" / "db" / "conftest.py")
    bindir = db._pg_bin()
    if bindir is None:
        return None
    server = db.PostgresServer(bindir, Path(tempfile.mkdtemp(prefix="mobius-bench-pg-")))
    server.start()
    return server


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


CPU: dict[str, float] = {}  # CPU seconds of the last run() / shell(), by kind


def run(*args: str, env: dict[str, str] | None = None) -> tuple[float, dict]:
    started, cpu = time.monotonic(), _cpu()
    proc = subprocess.run([*MOBIUS, *args, "--json"], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    seconds = time.monotonic() - started
    CPU["mobius"] = _cpu() - cpu
    if proc.returncode:
        raise SystemExit(f"mobius {' '.join(args)} failed: {proc.stderr.strip()}")
    return seconds, json.loads(proc.stdout)


def shell(command: str) -> float:
    started, cpu = time.monotonic(), _cpu()
    subprocess.run(command, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    CPU["shell"] = _cpu() - cpu
    return time.monotonic() - started


def change_files(library: Path, fraction: float, *, seed: int, pick: int | None = None) -> tuple[int, int]:
    """Rewrite `fraction` of the files with new bytes (`seed`); which files: `pick` (default `seed`), so the
    variants of one round change the same files, as many bytes (the next promote's restore point stores
    what the previous one wrote: with random picks, one variant's cost depended on the other's luck)."""
    rng = np.random.default_rng(seed)
    files = sorted(p for p in library.rglob("*") if p.is_file())
    chosen = np.random.default_rng(seed if pick is None else pick).choice(
        len(files), size=max(1, int(len(files) * fraction)), replace=False)
    size = 0
    for i in chosen:
        n = files[i].stat().st_size
        files[i].write_bytes(rng.bytes(n))
        size += n
    return len(chosen), size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sqlite", action="store_true", help="two SQLite databases even when PostgreSQL is there")
    parser.add_argument("--no-guarded", action="store_true", help="leave out the runbook with a restore point")
    parser.add_argument("--compare-with", metavar="SRC", help="another checkout's src/ (e.g. main's): each round "
                        "then promotes a second 10%% change with that mobius, so both are measured in one run")
    args = parser.parse_args()
    package = importlib.util.find_spec("mobius")
    sources = [*(package.submodule_search_locations or [])] if package is not None else []
    if args.compare_with:
        sources.append(str(Path(args.compare_with) / "mobius"))
    subprocess.run([sys.executable, "-m", "compileall", "-q", *sources], check=True, stdout=subprocess.DEVNULL)
    media = _load("bench_media", HERE / "media_migrate.py")
    shutil.rmtree(DATA, ignore_errors=True)
    root = DATA / "ws"
    (root / "environments").mkdir(parents=True)
    (root / ".env").write_text("")  # a workspace: its environments are in environments/
    staging_lib, prod_lib, runbook_lib = root / "staging" / "uploads", root / "prod" / "uploads", DATA / "runbook"
    count, size = media.build_library(staging_lib, args.size_mb * 1024 * 1024)
    server = None if args.sqlite else postgres_server()
    try:
        if server is not None:
            names = [server.create_database() for _ in range(4)]
            urls = [server.url(n) for n in names]
            engine = "postgresql"
            dump = (f"pg_dump --clean --if-exists --no-owner '{urls[0]}' | psql -q -v ON_ERROR_STOP=1 '{urls[2]}'")
        else:
            urls = [f"sqlite:///{root / n}.db" for n in ("staging", "prod", "runbook")]
            engine = "sqlite"
            dump = f"rm -f {root / 'runbook.db'} && sqlite3 {root / 'staging.db'} .dump | sqlite3 {root / 'runbook.db'}"
        (root / "environments" / "staging.env").write_text(
            f"MOBIUS_LIBRARY_DIR={staging_lib}\nMOBIUS_DATABASE_URL={urls[0]}\nMOBIUS_BACKUP_DIR=staging/backups\n"
            "MOBIUS_DEPLOY_MIN_FREE_MB=1\n")
        (root / "environments" / "production.env").write_text(
            f"MOBIUS_LIBRARY_DIR={prod_lib}\nMOBIUS_DATABASE_URL={urls[1]}\nMOBIUS_BACKUP_DIR=prod/backups\n"
            "MOBIUS_DEPLOY_MIN_FREE_MB=1\nMOBIUS_BACKUP_KEEP=2\n")
        run("--env", "staging", "db", "migrate", "--yes", "-w", str(root))
        run("--env", "production", "db", "migrate", "--yes", "-w", str(root))
        _seed(root, args.rows)
        print(f"library: {count} files, {size / 2**20:.0f} MiB; database: {engine}, {args.rows} rows")
        first, _ = run("env", "promote", "--from", "staging", "--to", "production", "--yes", "-w", str(root))
        shell(f"rsync -a {staging_lib}/ {runbook_lib}/")
        guarded = None if args.no_guarded or server is None or not shutil.which("restic") else \
            _guarded_shell(urls[0], urls[3], staging_lib, DATA / "guarded")
        print(f"first promote (full copy): {first:.1f} s")
        # production as it lives: backed up on a schedule, so its repository holds a recent snapshot
        regular, _ = run("--env", "production", "backup", "create", "-w", str(root))
        print(f"production's regular backup (first snapshot of its 1 GB): {regular:.1f} s")
        variants = {"this": None, **({"compared": args.compare_with} if args.compare_with else {})}
        ratios: dict[str, list[float]] = {name: [] for name in variants}
        cpu_ratios: dict[str, list[float]] = {name: [] for name in variants}
        guarded_ratios: list[float] = []
        for round_ in range(args.rounds):
            for n, (name, src) in enumerate(variants.items()):
                changed, changed_bytes = change_files(staging_lib, 0.10, seed=7 + 2 * round_ + n, pick=7 + round_)
                env = {"PYTHONPATH": src} if src else None
                seconds, out = run("env", "promote", "--from", "staging", "--to", "production", "--yes", "-w",
                                   str(root), env=env)
                mobius_cpu = CPU["mobius"]
                steps = _steps(seconds, out)
                runbook = shell(dump)
                runbook_cpu = CPU["shell"]
                runbook += shell(f"rsync -av {staging_lib}/ {runbook_lib}/")
                runbook_cpu += CPU["shell"]
                ratios[name].append(seconds / runbook)
                cpu_ratios[name].append(mobius_cpu / runbook_cpu)
                print(f"[{name}] changed {changed} files, {changed_bytes / 2**20:.0f} MiB: mobius {seconds:.1f} s "
                      f"({steps}) | runbook {runbook:.1f} s | mobius / runbook {ratios[name][-1]:.2f}x wall, "
                      f"{cpu_ratios[name][-1]:.2f}x CPU ({mobius_cpu:.1f} / {runbook_cpu:.1f} s) (target <= 2x); "
                      f"load {os.getloadavg()[0]:.1f}")
                if guarded is not None and n == 0:
                    point = shell(guarded[0])
                    copy = shell(guarded[1])
                    guarded_ratios.append(seconds / (point + copy))
                    print(f"  runbook with a restore point by hand: restore point (pg_dump to a file + restic "
                          f"backup) {point:.2f} s = {point / runbook:.1f}x the runbook, then the copy with rsync "
                          f"--fsync {copy:.2f} s; mobius / it {guarded_ratios[-1]:.2f}x wall")
        for name in variants:
            print(f"[{name}] median of {args.rounds}: mobius / runbook {statistics.median(ratios[name]):.2f}x wall, "
                  f"{statistics.median(cpu_ratios[name]):.2f}x CPU")
        if guarded_ratios:
            print(f"median of {args.rounds}: mobius / runbook with a restore point by hand "
                  f"{statistics.median(guarded_ratios):.2f}x wall")
        for name, src in variants.items():  # nothing changed since the last promote
            again, out = run("env", "promote", "--from", "staging", "--to", "production", "--yes", "-w", str(root),
                             env={"PYTHONPATH": src} if src else None)
            mobius_cpu = CPU["mobius"]
            runbook_again = shell(dump)
            runbook_cpu = CPU["shell"]
            runbook_again += shell(f"rsync -av {staging_lib}/ {runbook_lib}/")
            runbook_cpu += CPU["shell"]
            print(f"[{name}] promote, nothing changed: mobius {again:.1f} s, {mobius_cpu:.2f} s CPU "
                  f"({_steps(again, out)}) | runbook {runbook_again:.1f} s, {runbook_cpu:.2f} s CPU")
        print("note: mobius also takes and verifies a backup of the target and re-reads every copied byte; "
              "the runbook does neither")
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.root, ignore_errors=True)  # its data folder: one per run, left behind before
        shutil.rmtree(DATA, ignore_errors=True)


def _guarded_shell(source_url: str, target_url: str, source_lib: Path, folder: Path) -> tuple[str, str]:
    """Sets up the by-hand runbook's target (a copy of staging as the first promote left production, and a
    restic repository with a first snapshot of its library) and returns its commands for one promote: the
    restore point, then the copy."""
    library, repo, dump = folder / "library", folder / "restic", folder / "target.dump"
    folder.mkdir(parents=True)
    os.environ["RESTIC_PASSWORD"] = "benchmark"  # restic always encrypts; a password is its only way
    shell(f"pg_dump --no-owner '{source_url}' | psql -q -v ON_ERROR_STOP=1 '{target_url}'")
    shell(f"rsync -a {source_lib}/ {library}/")
    shell(f"restic init -q --repo {repo} && restic backup -q --repo {repo} {library}")
    return (f"pg_dump --format=custom --no-owner --file={dump} '{target_url}' && sync {dump} && "
            f"restic backup -q --repo {repo} {library}",
            f"pg_dump --clean --if-exists --no-owner '{source_url}' | psql -q -v ON_ERROR_STOP=1 '{target_url}' && "
            f"rsync -av --fsync {source_lib}/ {library}/")


def _steps(total: float, out: dict) -> str:
    timed = sum(s["seconds"] for s in out["steps"])
    return ", ".join([f"start-up + plan {total - timed:.1f}"] + [f"{s['step']} {s['seconds']:.1f}"
                                                               for s in out["steps"]])


def _seed(root: Path, rows: int) -> None:
    sys.path.insert(0, str(HERE.parent / "src"))
    from sqlalchemy import text

    from mobius.config import load_workspace
    from mobius.db.engine import connect, target_for

    with connect(target_for(load_workspace(root, env="staging"))) as conn, conn.begin():
        conn.execute(text("INSERT INTO games (slug, name, play_time, min_players, max_players)"
                          " VALUES (:slug, :name, 30, 2, 4)"),
                     [{"slug": f"game-{i}", "name": f"Game {i}"} for i in range(rows)])


if __name__ == "__main__":
    main()
