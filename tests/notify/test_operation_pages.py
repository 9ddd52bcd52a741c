"""`/operations` and `/operations/{id}` served by a real `mobius serve`, looked at over HTTP and in headless
Chromium while a real migration runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from notify_support import DB_PASSWORD, HOOK_SECRET, SMTP_PASSWORD, TOKEN, assert_no_secret
from tests.ops.conftest import write_plan

from mobius.config import load_workspace
from mobius.records import RecordStore, recorded

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
from api_support import TOKEN as SERVER_TOKEN  # noqa: E402
from api_support import Server  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-extensions", "--disable-component-update", "--disable-sync"]


def _steps(root: Path, op_id: str) -> list[tuple[str, str]]:
    with RecordStore.of(load_workspace(root), read_only=True) as store:
        op = store.get(op_id)
        return [(s.name, s.status) for s in op.steps] if op else []


def _wait(predicate, what: str, timeout: float = 120) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_pages_escape_mask_filter_and_link(ops_ws: Path) -> None:
    ws = load_workspace(ops_ws)
    hostile = "<script>alert(1)</script>"
    with pytest.raises(RuntimeError), recorded(ws, "db.migrate", {"note": hostile,
                                                                  "url": f"postgresql://u:{DB_PASSWORD}@db/x"}):
        raise RuntimeError(f"could not connect to postgresql://u:{DB_PASSWORD}@db/x {hostile}")
    with recorded(ws, "backup.create", {}) as done:
        done.result = {"files": 3}
    server = Server(ops_ws, env={"MOBIUS_NOTIFY": f"http://127.0.0.1:9/services/{HOOK_SECRET}",
                                 "MOBIUS_NOTIFY_SMTP_PASSWORD": SMTP_PASSWORD})
    try:
        listing = server.get("/operations")
        assert listing.status_code == 200 and "http-equiv='refresh'" not in listing.text  # nothing is running
        assert done.id in listing.text and "db.migrate" in listing.text and "<script>" not in listing.text
        only = server.get("/operations", params={"type": "backup", "status": "completed"}).text
        assert done.id in only and "db.migrate" not in only
        assert server.get("/operations", params={"type": "<b>"}).status_code == 422
        failed_id = next(o.id for o in RecordStore.of(ws, read_only=True).list(type="db.migrate"))
        page = server.get(f"/operations/{failed_id}")
        assert page.status_code == 200 and "&lt;script&gt;" in page.text and "<script>" not in page.text
        assert "failed" in page.text and "could not connect" in page.text
        assert server.get("/operations/no-such-op").status_code == 404
        assert f"/operations/{done.id}" in server.get("/").text  # the status page links each operation
        shown = [listing.text, only, page.text, server.get("/").text, server.get("/metrics").text, server.output()]
        assert_no_secret(*shown)
        assert not any(SERVER_TOKEN in text for text in shown)
    finally:
        server.stop()


@pytest.mark.slow
def test_running_migration_page_shows_step_change_in_chromium(mobius, ops_ws: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    server = Server(ops_ws)
    plan = write_plan(ops_ws, "  - backup: {}\n  - media.migrate: {to: media-v2}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    env.update({"MOBIUS_FAULT": "slow@step:media.migrate=3,slow-copy@chunk=150",
                "MOBIUS_API_TOKEN": TOKEN})
    run = subprocess.Popen([sys.executable, "-m", "mobius", "-w", str(ops_ws), "--json", "migrate", "run", str(plan),
                            "--yes"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    console: list[str] = []
    shots = ops_ws.parent
    try:
        ws = load_workspace(ops_ws)

        def op_id() -> str | None:
            with RecordStore.of(ws, read_only=True) as store:
                found = store.list(type="migrate.run", limit=1)
                return found[0].id if found else None

        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                _wait(lambda: op_id() is not None, "the migration to be recorded")
                mid = op_id()
                _wait(lambda: ("backup", "done") in _steps(ops_ws, mid), "the backup step")
                # it sleeps before the next step; frozen here, it waits for the page (a loaded machine is slow)
                os.kill(run.pid, signal.SIGSTOP)
                assert all(name != "media.migrate" for name, _ in _steps(ops_ws, mid))
                page = browser.new_page()
                page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                        else None)
                page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
                page.goto(f"{server.url}/operations/{mid}", wait_until="load")
                assert "running" in page.locator("#op-status").inner_text()
                assert "media.migrate" not in page.locator("#steps").inner_text()
                page.screenshot(path=str(shots / "op-before.png"), full_page=True)
                os.kill(run.pid, signal.SIGCONT)
                _wait(lambda: any(name == "media.migrate" for name, _ in _steps(ops_ws, mid)), "the step change")
                # the page refreshes itself (meta refresh, no script): the new step shows within 2 s
                page.locator("#steps").get_by_text("media.migrate").wait_for(timeout=2000)
                page.screenshot(path=str(shots / "op-during.png"), full_page=True)
                assert page.evaluate("document.scripts.length") == 0
                assert run.wait(180) == 0, run.stderr
                page.locator("#op-status").get_by_text("completed").wait_for(timeout=5000)
                page.screenshot(path=str(shots / "op-after.png"), full_page=True)
                text = page.locator("body").inner_text()
                assert "validate" in text and "post-migration report" in text
                assert page.locator("meta[http-equiv=refresh]").count() == 0  # finished: it stops refreshing
                page.get_by_text("post-migration report").click()
                assert mid in page.content()
            finally:
                browser.close()
        assert console == [], console
        for name in ("op-before.png", "op-during.png", "op-after.png"):
            assert (shots / name).stat().st_size > 1000
        assert_no_secret(httpx.get(f"{server.url}/operations/{mid}").text)
    finally:
        if run.poll() is None:
            os.kill(run.pid, signal.SIGCONT)
            run.kill()
            run.wait()
        server.stop()
