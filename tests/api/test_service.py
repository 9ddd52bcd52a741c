"""The service over real HTTP: health, readiness, the games API and its token, read-only views, metrics."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
from api_support import TOKEN, Server, auth, prepare_workspace

import mobius.db
from mobius.config import load_workspace
from mobius.records import recorded

MIGRATIONS = Path(mobius.db.__file__).parent / "migrations"
LATEST = max(int(p.name[:4]) for p in MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql"))  # the built-in schema


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, value = line.rsplit(" ", 1)
        metric = head.split("{", 1)[0]
        if metric != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def test_health_is_health_json_and_needs_nothing(server: Server) -> None:
    r = server.get("/health")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/health+json")
    body = r.json()
    assert body["status"] == "pass"
    item = body["checks"]["uptime"][0]
    assert item["status"] == "pass" and item["observedUnit"] == "s" and item["observedValue"] >= 0 and item["time"]


def test_ready_passes_with_every_check_and_each_alone(server: Server) -> None:
    r = server.get("/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "pass"
    assert set(body["checks"]) == {"shutdown", "database", "schema", "library", "backups", "disk", "backup-age"}
    schema = body["checks"]["schema"][0]
    assert schema["observedValue"] == schema["threshold"] == LATEST
    for name in ("database", "schema", "library", "backups", "disk", "backup-age", "shutdown"):
        one = server.get(f"/ready/{name}")
        assert one.status_code == 200 and set(one.json()["checks"]) == {name}
    assert server.get("/ready/nonsense").status_code == 404
    verbose = server.get("/ready", params={"verbose": ""})
    assert verbose.headers["content-type"].startswith("text/plain")
    assert "[+]pass" in verbose.text and "backup-age" in verbose.text


def test_readiness_fails_for_an_old_backup_and_no_disk(api_workspace: Path, tmp_path: Path) -> None:
    """The library functions behind /ready: a failed check is a verdict, never an exception."""
    from mobius.api.readiness import backup_age_check, readiness

    ws = load_workspace(api_workspace)
    assert readiness(ws).ok
    os.environ["MOBIUS_FAULT"] = "free-bytes@disk=0"
    try:
        disk = readiness(ws, "disk").checks[0]
    finally:
        del os.environ["MOBIUS_FAULT"]
    assert disk.failed and disk.observed == 0
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=ws.settings.backup_max_age_hours + 1)
    age = backup_age_check(ws, now=later)
    assert age.failed and age.unit == "h" and age.observed > ws.settings.backup_max_age_hours
    os.environ["MOBIUS_BACKUP_MAX_AGE_HOURS"] = "0"
    try:
        assert readiness(load_workspace(api_workspace), "backup-age").checks[0].verdict.value == "skipped"
    finally:
        del os.environ["MOBIUS_BACKUP_MAX_AGE_HOURS"]


def test_games_crud_with_token(server: Server) -> None:
    c = server.client
    total = c.get("/api/games").json()["total"]
    game = {"slug": "azul", "name": "Azul", "play_time": 45, "min_players": 2, "max_players": 4,
            "publisher": "Plan B", "year_published": 2017}
    created = c.post("/api/games", json=game, headers=auth())
    assert created.status_code == 201, created.text
    g = created.json()
    assert g["complexity_rating"] == 2 and created.headers["location"] == f"/api/games/{g['id']}"
    assert c.get(f"/api/games/{g['id']}").json()["name"] == "Azul"
    assert c.post("/api/games", json=game, headers=auth()).status_code == 409
    page = c.get("/api/games", params={"limit": 1, "offset": 0}).json()
    assert page["total"] == total + 1 and len(page["items"]) == 1
    assert [x["slug"] for x in c.get("/api/games", params={"q": "AZU"}).json()["items"]] == ["azul"]
    assert "azul" in [x["slug"] for x in c.get("/api/games", params={"players": 3, "complexity": 2}).json()["items"]]
    changed = c.patch(f"/api/games/{g['id']}", json={"name": "Azul (2nd)", "max_players": 5}, headers=auth())
    assert changed.status_code == 200 and changed.json()["max_players"] == 5
    assert c.patch(f"/api/games/{g['id']}", json={"max_players": 1}, headers=auth()).status_code == 409
    assert c.delete(f"/api/games/{g['id']}", headers=auth()).status_code == 204
    assert c.get(f"/api/games/{g['id']}").status_code == 404
    assert c.get("/api/games").json()["total"] == total


def test_writes_without_the_right_token_get_401_and_change_nothing(server: Server, api_workspace: Path) -> None:
    c = server.client
    db = api_workspace / "mobius.db"

    def snapshot() -> list[tuple]:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT * FROM games ORDER BY id").fetchall()

    made = c.post("/api/games", json={"slug": "kept", "name": "Kept", "play_time": 30, "min_players": 2,
                                      "max_players": 3}, headers=auth())
    assert made.status_code == 201
    first = made.json()["id"]
    before = snapshot()
    new = {"slug": "nope", "name": "Nope", "play_time": 10, "min_players": 1, "max_players": 2}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}x"},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}):
        assert c.post("/api/games", json=new, headers=headers).status_code == 401
        assert c.patch(f"/api/games/{first}", json={"name": "X"}, headers=headers).status_code == 401
        assert c.delete(f"/api/games/{first}", headers=headers).status_code == 401
    assert snapshot() == before


def _golden_result(game: str, failed: list[str], html: Path | None) -> dict:
    checks = [{"name": n, "passed": n not in failed} for n in ("frame_0.5s_ssim", "lufs", "true_peak", *failed)]
    result = {"game": game, "passed": not failed, "failed": failed, "checks": checks}
    if html:
        result["html"] = str(html)
    return result


def test_operations_backups_golden_and_metrics(server: Server, api_workspace: Path) -> None:
    ws = load_workspace(api_workspace)
    with recorded(ws, "backup.create", {"keep": 5}) as op:
        op.result = {"files": 3}
    report = api_workspace / "out" / "golden.html"
    report.parent.mkdir(exist_ok=True)
    report.write_text("<!doctype html><title>golden</title><p>golden report</p>")
    with recorded(ws, "golden.check", {"game": "sushi-go"}) as g:
        g.result = _golden_result("sushi-go", ["lufs"], report)
    c = server.client
    ops = c.get("/api/operations").json()
    assert {op.id, g.id} <= {o["id"] for o in ops}
    one = c.get(f"/api/operations/{op.id}").json()
    assert one["status"] == "completed" and one["params"] == {"keep": 5}
    assert c.get("/api/operations/nope").status_code == 404
    backups = c.get("/api/backups").json()
    assert backups[0]["state"] == "verified" and backups[0]["name"].endswith(".tar.zst")
    golden = {x["game"]: x for x in c.get("/api/golden").json()}
    assert golden["sushi-go"]["verdict"] == "fail" and golden["sushi-go"]["failed_checks"] == ["lufs"]
    assert golden["sushi-go"]["passed"] == 3 and golden["sushi-go"]["html_report"] is True
    assert "golden report" in c.get("/golden/sushi-go/report").text
    assert c.get("/golden/other/report").status_code == 404

    text = c.get("/metrics").text
    assert _metric(text, "mobius_operations_total", type="backup.create", status="completed") >= 1
    assert _metric(text, "mobius_operation_duration_seconds_count", type="golden.check") >= 1
    assert _metric(text, "mobius_golden_checks_failed", game="sushi-go") == 1
    assert _metric(text, "mobius_golden_checks_passed", game="sushi-go") == 3
    assert _metric(text, "mobius_backup_last_verified") == 1
    assert 0 <= _metric(text, "mobius_backup_last_age_seconds") < 3600
    assert _metric(text, "mobius_backup_last_size_bytes") > 0
    assert _metric(text, "mobius_db_schema_version") == LATEST
    assert _metric(text, "mobius_http_requests_total", route="/api/operations/{op_id}", status_class="4xx") >= 1
    assert _metric(text, "mobius_http_request_duration_seconds_count", route="/api/golden") >= 1
    assert "/api/operations/nope" not in text  # route templates, not paths: bounded labels
    if importlib.util.find_spec("mobius.fingerprint") is None:  # /metrics/dhash appears with the fingerprint helper
        assert c.get("/metrics/dhash").status_code == 404


def test_collector_registry_serves_a_capability(api_workspace: Path) -> None:
    from mobius.api import metrics

    metrics.register_collector("dhash", lambda ws: {"hash_p95_seconds": 0.012, "extraction_failure_ratio": 0.0})
    try:
        text = metrics.render(load_workspace(api_workspace), only="dhash").decode()
    finally:
        metrics.COLLECTORS.pop("dhash")
    assert "mobius_dhash_hash_p95_seconds 0.012" in text and "mobius_http" not in text


def test_two_workers_count_every_request(api_workspace: Path) -> None:
    srv = Server(api_workspace, workers=2)
    try:
        before = _metric(srv.get("/metrics").text, "mobius_http_requests_total", route="/health")
        folder = api_workspace / "state" / f"prometheus-{srv.port}"

        def pids() -> set[str]:
            return {p.stem.rsplit("_", 1)[-1] for p in folder.glob("counter_*.db")}

        sent = 0
        # a new connection for each request, so the kernel spreads them over both workers; at least 200,
        # and on until both workers have answered some (a worker still starting gets none at first)
        with httpx.Client(base_url=srv.url, headers={"Connection": "close"}, timeout=10) as fresh:
            while sent < 200 or (len(pids()) < 2 and sent < 3000):
                assert fresh.get("/health").status_code == 200
                sent += 1
        assert len(pids()) >= 2, f"only {pids()} answered {sent} requests"
        text = srv.get("/metrics").text
        assert _metric(text, "mobius_http_requests_total", route="/health") - before == sent
        assert _metric(text, "mobius_http_request_duration_seconds_count", route="/health") - before == sent
    finally:
        assert srv.stop() == 0


def test_no_token_configured_refuses_writes_and_sigterm_fails_readiness_first(api_workspace: Path) -> None:
    srv = Server(api_workspace, drain=1.5, env={"MOBIUS_API_TOKEN": ""})
    r = srv.client.post("/api/games", json={"slug": "a", "name": "A", "play_time": 1, "min_players": 1,
                                            "max_players": 1}, headers={"Authorization": "Bearer anything"})
    assert r.status_code == 401 and "MOBIUS_API_TOKEN is not set" in r.json()["detail"]
    assert srv.get("/ready").status_code == 200
    body = b'{"slug": "late", "name": "Late", "play_time": 5, "min_players": 1, "max_players": 2}'
    in_flight = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    in_flight.sendall(b"POST /api/games HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])  # a request still arriving
    time.sleep(0.2)
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    r = httpx.get(srv.url + "/ready", timeout=5)
    assert r.status_code == 503 and r.json()["checks"]["shutdown"][0]["status"] == "fail"
    assert httpx.get(srv.url + "/health", timeout=5).status_code == 200  # still answering while draining
    time.sleep(2.0)  # past the drain: uvicorn is shutting down, the in-flight request must still be answered
    in_flight.sendall(body[10:])
    answer = in_flight.recv(4096)
    in_flight.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert srv.proc.wait(30) == 0
    last = [line for line in srv.stdout_path.read_text().splitlines() if line.strip()][-1]
    assert json.loads(last) == {"ok": True, "host": "127.0.0.1", "port": srv.port, "workers": 1, "stopped": True}


def test_port_in_use_is_one_line_exit_3(mobius, api_workspace: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = mobius("--workspace", str(api_workspace), "serve", "--port", str(port), timeout=60)
    assert proc.returncode == 3
    assert "cannot listen on 127.0.0.1" in proc.stderr and "Traceback" not in proc.stderr


def test_a_snapshot_counts_as_the_newest_verified_backup(_sample_template: Path, tmp_path: Path) -> None:
    """Can fail: with snapshots the default of `backup create`, /metrics and the status page saw no backup."""
    from mobius.api import metrics

    ws = prepare_workspace(tmp_path / "ws", _sample_template, backup=False)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    done = subprocess.run([sys.executable, "-m", "mobius", "--workspace", str(ws), "--json", "backup", "create",
                           "--no-database"], env=clean, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = metrics.render(load_workspace(ws)).decode()
    assert _metric(text, "mobius_backups") == 1
    assert _metric(text, "mobius_backup_last_verified") == 1
    assert 0 <= _metric(text, "mobius_backup_last_verified_age_seconds") < 3600
    assert "mobius_backup_last_size_bytes" not in text  # a snapshot's packs are shared: no size of its own
    srv = Server(ws)
    try:
        page = srv.get("/").text
    finally:
        srv.stop()
    assert "<td>snapshot</td>" in page and "verified" in page
