"""The metrics alerting reads (Prometheus naming), computed from a real record store, and the example rules."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mobius.api.metrics import render
from mobius.config import load_workspace
from mobius.records import RecordStore, recorded
from mobius.safety.stamps import parse_utc

RULES = Path(__file__).parents[2] / "docs" / "alerts" / "mobius-rules.yml"


def _samples(ws) -> dict[tuple[str, tuple], float]:  # noqa: ANN001
    text = render(ws).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_alerting_metrics_follow_the_record(ops_ws: Path) -> None:
    ws = load_workspace(ops_ws)
    (ws.backups / "packs").mkdir(parents=True, exist_ok=True)
    (ws.backups / "packs" / "p1").write_bytes(b"x" * 4096)
    with recorded(ws, "backup.create", {}) as backup:
        backup.result = {"files": 1}
    for outcome in ("fail", "pass", "fail"):
        with recorded(ws, "golden.check", {"games": ["sushi"]}) as check:
            check.result = {"game": "sushi", "passed": outcome == "pass",
                            "failed": ["ssim"] if outcome == "fail" else [], "checks": [{"name": "ssim"}]}
            check.status = "failed" if outcome == "fail" else "completed"
    with RecordStore.of(ws) as store:
        running = store.start("migrate.run", {"plan": {"name": "p"}})
        store.step_started(running, 0, "preflight")
        store.step_finished(running, 0, "done")
        store.event(running, "monitor.error_rate.alert", {"value": 0.5})
        store.event(running, "monitor.error_rate.rollback", {"value": 0.5})
        store.event(running, "monitor.error_rate.alert", {"value": 0.4})
        store.event(running, "notify.delivered", {"destination": "webhook http://127.0.0.1:1"})
        backup_finished = store.get(backup.id).finished
    values = _samples(ws)
    assert values[("mobius_operation_last_success_timestamp_seconds", (("type", "backup.create"),))] == \
        parse_utc(backup_finished).timestamp()
    assert values[("mobius_monitor_verdicts_total", (("monitor", "error_rate"), ("verdict", "alert")))] == 2
    assert values[("mobius_monitor_verdicts_total", (("monitor", "error_rate"), ("verdict", "rollback")))] == 1
    assert values[("mobius_migration_running", ())] == 1  # this process is alive
    assert values[("mobius_golden_check_failures_total", (("game", "sushi"),))] == 2
    assert values[("mobius_notifications_total", (("result", "delivered"),))] == 1
    assert values[("mobius_step_duration_seconds_count", (("step", "preflight"), ("type", "migrate.run")))] == 1
    assert values[("mobius_step_duration_seconds_bucket", (("le", "+Inf"), ("step", "preflight"),
                                                           ("type", "migrate.run")))] == 1
    on_disk = sum(p.stat().st_size for p in ws.backups.rglob("*") if p.is_file() and not p.is_symlink())
    assert values[("mobius_backup_repository_size_bytes", ())] == on_disk >= 4096
    with RecordStore.of(ws) as store:
        store.finish(running, "completed")
    assert _samples(ws)[("mobius_migration_running", ())] == 0


def test_example_alert_rules_are_valid_and_name_served_metrics(ops_ws: Path) -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert len(alerts) >= 3
    for rule in alerts:  # the rule file format: alert, expr, optional for/labels/annotations, nothing else
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
        assert rule["alert"].isidentifier() and rule["expr"].strip() and rule["annotations"]["summary"]
    text = render(load_workspace(ops_ws)).decode()
    served = {s.name for family in text_string_to_metric_families(text) for s in family.samples} | {
        f.name for f in text_string_to_metric_families(text)}
    named = {"mobius_operation_last_success_timestamp_seconds", "mobius_monitor_verdicts_total",
             "mobius_golden_check_failures_total"}
    assert all(any(n in r["expr"] for r in alerts) for n in named)
    assert {"mobius_operation_last_success_timestamp_seconds", "mobius_monitor_verdicts",
            "mobius_golden_check_failures"} <= served
    promtool = shutil.which("promtool")
    if promtool is None:
        if __import__("os").environ.get("CI"):
            pytest.fail("promtool is not installed (apt-get install prometheus; .ci/run installs it)")
        return
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and f"SUCCESS: {len(alerts)} rules found" in done.stdout, done.stdout + done.stderr
