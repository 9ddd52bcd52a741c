"""Readiness goes to 503 and back: PostgreSQL stopped and started, the library made unreadable and restored.
And no secret (the database password, the API token) in any response, page or log line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import TOKEN, Server, auth, db_conftest, prepare_workspace

PASSWORD = "pw-" + "Zq81sKx0Lm"  # trust authentication accepts (and ignores) it; it must never be shown


def _wait_status(srv: Server, path: str, code: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = srv.get(path)
        if last.status_code == code:
            return
        time.sleep(0.2)
    got = f"{last.status_code}: {last.text}" if last is not None else "nothing"
    raise AssertionError(f"{path}: wanted {code}, last {got}")


@pytest.fixture
def own_postgres() -> Iterator[object]:
    """A PostgreSQL server of this test's own: the test stops and starts it."""
    bindir = db_conftest._pg_bin()
    if bindir is None:
        if db_conftest.REQUIRE_POSTGRES:
            pytest.fail("PostgreSQL binaries not found (MOBIUS_TEST_REQUIRE_POSTGRES=1)")
        pytest.skip("PostgreSQL binaries not found")
    root = Path(tempfile.mkdtemp(prefix="mobius-pg-api-"))
    server = db_conftest.PostgresServer(bindir, root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _restart(pg: object) -> None:
    """pg_ctl start on the existing cluster (the fixture's start() would run initdb again)."""
    options = (f"-c listen_addresses=127.0.0.1 -c port={pg.port} -c unix_socket_directories={pg.root} "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
    done = pg._run(pg.bindir / "pg_ctl", "-D", pg.data, "-o", options, "-l", pg.root / "server.log", "-w", "-t", "60",
                   "start")
    assert done.returncode == 0, done.stderr or done.stdout


def _pg_workspace(root: Path, template: Path, pg: object) -> Path:
    name = pg.create_database()
    url = pg.url(name).replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")
    ws = prepare_workspace(root, template, backup=False)
    env_file = ws / ".env"
    lines = [line for line in env_file.read_text().splitlines() if not line.startswith("MOBIUS_DATABASE_URL=")]
    env_file.write_text("\n".join([*lines, f"MOBIUS_DATABASE_URL={url}"]) + "\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    for args in (["db", "migrate", "--no-backup"], ["backup", "create", "--no-database"]):
        done = subprocess.run([sys.executable, "-m", "mobius", "--workspace", str(ws), *args], env=clean,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    return ws


@pytest.mark.postgres
@pytest.mark.slow
def test_ready_follows_postgres_down_and_up_and_nothing_leaks(own_postgres, _sample_template: Path,
                                                             tmp_path: Path) -> None:
    ws = _pg_workspace(tmp_path / "ws", _sample_template, own_postgres)
    srv = Server(ws)
    seen: list[str] = []
    try:
        _wait_status(srv, "/ready", 200)
        created = srv.client.post("/api/games", json={"slug": "pg-game", "name": "PG", "play_time": 70,
                                                      "min_players": 1, "max_players": 2}, headers=auth())
        assert created.status_code == 201 and created.json()["complexity_rating"] == 3
        for path in ("/", "/ready", "/ready?verbose", "/metrics", "/openapi.json", "/api/games",
                     "/api/operations", "/api/backups", "/api/golden", "/ready/database"):
            seen.append(srv.get(path).text)

        own_postgres.stop()
        _wait_status(srv, "/ready", 503)
        down = srv.get("/ready").json()
        assert down["status"] == "fail" and down["checks"]["database"][0]["status"] == "fail"
        assert down["checks"]["library"][0]["status"] == "pass"  # only what is broken fails
        assert srv.get("/ready/database").status_code == 503
        assert srv.get("/health").status_code == 200  # liveness does not depend on the database
        games = srv.get("/api/games")
        assert games.status_code == 503
        for path in ("/", "/ready", "/ready?verbose", "/metrics", "/ready/schema"):
            seen.append(srv.get(path).text)
        seen.append(games.text)

        _restart(own_postgres)
        _wait_status(srv, "/ready", 200, timeout=30)
        assert srv.get("/api/games").status_code == 200
    finally:
        srv.stop()
    seen.append(srv.output())
    seen += [p.read_text(errors="replace") for p in (ws / "logs").glob("*")]
    everything = "\n".join(seen)
    assert "database unavailable" in everything  # the failure was reported ...
    assert PASSWORD not in everything and TOKEN not in everything  # ... without the secrets


def _break_library(library: Path) -> Path:
    """Make the library unreadable. chmod 000 does not stop root, so as root the folder is moved away and a
    dangling symlink put in its place; returns where the folder went (or the folder, for chmod)."""
    if os.geteuid() != 0:
        library.chmod(0)
        return library
    aside = library.with_name(library.name + ".aside")
    library.rename(aside)
    library.symlink_to(library.with_name("missing-target"))
    return aside


def _repair_library(library: Path, aside: Path) -> None:
    if aside == library:
        library.chmod(0o755)
        return
    library.unlink()
    aside.rename(library)


def test_ready_follows_an_unreadable_library(api_workspace: Path, server: Server) -> None:
    library = api_workspace / "uploads"
    assert server.get("/ready").status_code == 200
    aside = _break_library(library)
    try:
        r = server.get("/ready")
        assert r.status_code == 503
        check = r.json()["checks"]["library"][0]
        assert check["status"] == "fail" and check["output"]
        assert server.get("/ready/library").status_code == 503
        assert server.get("/ready/disk").status_code == 200
    finally:
        _repair_library(library, aside)
    assert server.get("/ready").status_code == 200
    assert server.get("/ready/library").status_code == 200
