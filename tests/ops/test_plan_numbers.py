"""What people read about a migration (issue 26 items 1, 2, 5): the steps in `history --json`, the
probes a plan runs and what they cost, sizes in the report and the status page."""

from __future__ import annotations

import re
from pathlib import Path

from tests.api.api_support import Server
from tests.ops.conftest import last_migration, write_plan


def _without_probes(plan: Path) -> Path:
    plan.write_text(plan.read_text().replace("probes: [library_listing]\n", ""))
    return plan


def test_history_json_carries_each_operations_steps(mobius, ops_ws: Path) -> None:
    """Issue 26 item 1: `history --json` listed `"steps": []` for a migration with four recorded steps."""
    plan = write_plan(ops_ws, "  - backup: {}\n")
    assert mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes").returncode == 0
    code, listed = mobius.json("-w", str(ops_ws), "history")
    assert code == 0
    migration = next(op for op in listed["operations"] if op["type"] == "migrate.run")
    code, one = mobius.json("-w", str(ops_ws), "history", migration["id"])
    assert code == 0
    assert [s["name"] for s in migration["steps"]] == ["preflight", "backup", "validate"]
    assert migration["steps"] == one["operation"]["steps"]
    for op in listed["operations"]:
        code, each = mobius.json("-w", str(ops_ws), "history", op["id"])
        assert op["steps"] == each["operation"]["steps"], op["type"]


def test_a_plan_without_probes_measures_what_its_steps_change_and_counts_the_cost(mobius, ops_ws: Path) -> None:
    """Issue 26 item 2: without `probes:` every probe ran (pipeline_test renders: ~11 s for a plan moving a
    few files) and their time was not in the estimate. Now the steps choose (media.migrate: the library
    listing and the service), `migrate plan` names them with their cost, and the estimate includes it."""
    plan = _without_probes(write_plan(ops_ws, "  - backup: {}\n  - media.migrate: {to: media-v2}\n"))
    code, out = mobius.json("-w", str(ops_ws), "migrate", "plan", str(plan))
    assert code == 0, out
    assert list(out["probes"]) == ["library_listing", "service_ready"]
    assert out["probes"]["service_ready"] == {"skipped": "not applicable here"}
    listing = out["probes"]["library_listing"]
    assert listing["seconds"] == round(2 * 3 * listing["per_sample"], 3) and listing["seconds"] > 0
    steps = sum(p["estimate_s"] for p in out["plans"])
    files = int(out["plans"][1]["details"][0].split()[0])
    assert files > 40 and out["plans"][1]["estimate_s"] >= 1.0 + files * 0.001, "a file's cost is in the estimate"
    assert out["estimate_s"] == round(1.0 + steps + listing["seconds"], 3)
    assert out["estimate_source"] == "checklist + step plans + probes"
    proc = mobius("-w", str(ops_ws), "migrate", "plan", str(plan))
    assert re.search(r"^  probe library_listing: ~\d+\.\d s \(measured: one listing; 3 sample\(s\) before and after\)$",
                     proc.stdout, re.M), proc.stdout
    assert "pipeline_test" not in proc.stdout
    notice = mobius("-w", str(ops_ws), "migrate", "report", str(plan), "--kind", "pre")
    assert "(checklist + step plans + probes) |" in notice.stdout and "| Probes | library_listing ~" in notice.stdout
    assert mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes").returncode == 0
    preflight = last_migration(mobius, ops_ws)["steps"][0]
    assert sorted(preflight["evidence"]["baseline"]["probes"]) == ["library_listing", "service_ready"]
    assert "median_s" in preflight["evidence"]["baseline"]["probes"]["library_listing"]


def test_a_plan_naming_its_probes_runs_exactly_those(mobius, ops_ws: Path) -> None:
    """`probes: []` runs none; a plan's own list is kept as written (the default applies only without one)."""
    plan = write_plan(ops_ws, "  - backup: {}\n  - media.migrate: {to: media-v2}\n")
    plan.write_text(plan.read_text().replace("probes: [library_listing]", "probes: []"))
    code, out = mobius.json("-w", str(ops_ws), "migrate", "plan", str(plan))
    assert code == 0, out
    assert out["probes"] == {} and "probes" not in out["estimate_source"]
    proc = mobius("-w", str(ops_ws), "migrate", "plan", str(plan))
    assert "  probes: none" in proc.stdout


def test_report_and_status_page_say_what_was_observed_in_readable_units(mobius, ops_ws: Path) -> None:
    """Issue 26 item 5: the report printed free space as `84668682240 bytes` alone, and the status page's
    readiness table showed `True` as what the backups check observed."""
    plan = write_plan(ops_ws, "  - backup: {}\n  - media.migrate: {to: media-v2}\n")
    assert mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes").returncode == 0
    report = mobius("-w", str(ops_ws), "migrate", "report", last_migration(mobius, ops_ws)["id"])
    assert report.returncode == 0, report.stderr
    disk = next(line for line in report.stdout.splitlines() if "| disk.free |" in line)
    assert re.search(r"\| \d+ bytes \(\d+\.\d [KMGT]iB\) \| >= \d+ \(\d+\.\d [KMGT]iB\) \|", disk), disk
    space = next(line for line in report.stdout.splitlines() if "| media.target.space |" in line)
    assert re.search(r"\| \d+ bytes free \(\d+\.\d [KMGT]iB\) \|.*\| of \d+ bytes \(\d+\.\d [KMGT]iB\) \|$", space)
    server = Server(ops_ws)
    try:
        page = server.get("/").text
    finally:
        server.stop()
    row = re.search(r"<tr><td>backups</td>.*?</tr>", page)
    assert row, page
    assert "<td>probe file written and removed</td>" in row.group(), row.group()
    assert "<td>True</td>" not in row.group()
