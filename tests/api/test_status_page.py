"""The status page in a real headless Chromium (Debian's package, driven by Playwright; never `playwright install`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from api_support import Server

from mobius.config import load_workspace
from mobius.records import recorded

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-extensions", "--disable-component-update", "--disable-sync"]


@pytest.mark.slow
def test_status_page_in_chromium_shows_a_new_operation_without_console_errors(server: Server,
                                                                             api_workspace: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    ws = load_workspace(api_workspace)
    with recorded(ws, "media.migrate", {"to": "s3://bucket/library"}) as op:
        op.result = {"files": 43}
    with pytest.raises(RuntimeError), recorded(ws, "db.migrate", {"to": 3}):
        raise RuntimeError("boom for the page")

    console: list[str] = []
    failed_requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                    else None)
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.on("requestfailed", lambda r: failed_requests.append(r.url))
            response = page.goto(server.url + "/", wait_until="load")
            assert response is not None and response.status == 200
            assert page.title() == "mobius status"
            assert page.locator("#ready-status").inner_text() == "pass"
            ops = page.locator("#last-operations").inner_text()
            assert op.id in ops and "media.migrate" in ops and "completed" in ops
            assert "db.migrate" in ops and "failed" in ops
            assert "verified" in page.locator("#backups").inner_text()
            rollup = page.locator("#operations-per-day").inner_text()
            assert "completed" in rollup and "failed" in rollup
            page.screenshot(path=str(api_workspace.parent / "status.png"), full_page=True)
            assert page.evaluate("document.scripts.length") == 0  # server-rendered, no JavaScript
        finally:
            browser.close()
    assert console == [], console
    assert failed_requests == [], failed_requests
    assert (api_workspace.parent / "status.png").stat().st_size > 1000
