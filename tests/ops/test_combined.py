"""The combined plan (backup + media + db + golden) end to end on SQLite and on the real PostgreSQL,
then rolled back to the exact prior state; and the reports it yields (Markdown, and HTML in chromium)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from tests.ops.conftest import NOTES_MIGRATION, snapshot, write_plan

from mobius.workspace.init import initialize

COMBINED = """  - backup: {}
  - media.migrate: {to: media-v2}
  - db.migrate: {to: 4}
  - golden.update: {games: [sushi-go]}
"""


def _workspace(root: Path, database_url: str | None) -> Path:
    root.mkdir(parents=True)
    if database_url:
        (root / ".env").write_text(f"MOBIUS_ENV=development\nMOBIUS_LIBRARY_DIR=uploads\n"
                                   f"MOBIUS_DATABASE_URL={database_url}\n"
                                   "MOBIUS_EMERGENCY_CONTACTS=Database admin: Ed, +1 555 0100; Lead: Lin\n")
    initialize(root, sample=True)
    (root / "migrations").mkdir(exist_ok=True)
    (root / "migrations" / "0004_add_notes.sql").write_text(NOTES_MIGRATION)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_combined_plan_end_to_end_and_rollback(mobius, tmp_path: Path, request: pytest.FixtureRequest,
                                               engine: str) -> None:
    url = request.getfixturevalue("pg_url") if engine == "postgresql" else None
    root = _workspace(tmp_path / "ws", url)
    before = snapshot(root)
    plan = write_plan(root, COMBINED, extra="")
    plan.write_text(plan.read_text().replace("validate: [file_counts, checksums, db_check]",
                                             "validate: [file_counts, checksums, db_check, golden_check_all]"))
    proc = mobius("-w", str(root), "migrate", "run", str(plan), "--yes")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("migration migrate-")
    op_id = proc.stdout.splitlines()[0].split()[1].rstrip(":")
    after = snapshot(root)
    assert after["library"] == str(root / "media-v2") and after["library_digest"] == before["library_digest"]
    assert after["db"] != before["db"] and after["golden"] != before["golden"]
    assert (root / "tests" / "golden" / "sushi-go" / "golden.json").is_file()

    md = mobius("-w", str(root), "migrate", "report", op_id)
    assert md.returncode == 0
    for text in ("Post-migration report: test-plan", "Ada Lovelace", "Grace Hopper", "| completed |",
                 "golden_check_all", "Duration vs estimate"):
        assert text in md.stdout
    if url:
        assert "| Database admin | Ed, +1 555 0100 |" in md.stdout

    proc = mobius("-w", str(root), "migrate", "rollback", op_id, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert snapshot(root) == before
    code, status = mobius.json("-w", str(root), "migrate", "status", op_id)
    assert status["migration"]["status"] == "rolled-back"


def test_reports_render_in_headless_chromium(mobius, ops_ws: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    plan = write_plan(ops_ws, "  - backup: {}\n", extra="risk: low\n".replace("risk: low\n", ""))
    pre = mobius("-w", str(ops_ws), "migrate", "report", str(plan), "--kind", "pre", "--format", "html",
                 "--out", str(tmp_path / "pre.html"))
    assert pre.returncode == 0, pre.stderr
    proc = mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes")
    op_id = proc.stdout.splitlines()[0].split()[1].rstrip(":")
    out = tmp_path / "post.html"
    assert mobius("-w", str(ops_ws), "migrate", "report", op_id, "--format", "html", "--out", str(out)).returncode == 0
    for page, title in ((tmp_path / "pre.html", "Pre-migration notice"), (out, "Post-migration report")):
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                              f"file://{page}"], capture_output=True, text=True, timeout=120)
        assert title in dom.stdout and "<table>" in dom.stdout, dom.stderr[-500:]
    shot = tmp_path / "post.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    f"file://{out}"], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 1000
    code, history = mobius.json("-w", str(ops_ws), "history", "--type", "migrate.notice")
    assert history["operations"] and history["operations"][0]["params"]["plan"] == "test-plan"
