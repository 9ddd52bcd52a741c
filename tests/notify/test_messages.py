"""What each notification says: the notice, deploys, failed backups, a failed rollback; never a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from notify_support import DB_PASSWORD, SMTP_PASSWORD, TOKEN, WebhookReceiver, assert_no_secret, notify_env
from tests.ops.conftest import write_plan

from mobius import notify
from mobius.config import load_workspace
from mobius.records import RecordStore, recorded


def test_the_notice_is_sent_with_the_notice(mobius, ops_ws: Path, webhook: WebhookReceiver) -> None:
    plan = write_plan(ops_ws, "  - backup: {}\n  - media.migrate: {to: media-v2}\n")
    env = notify_env(webhook.url)
    proc = mobius("-w", str(ops_ws), "migrate", "report", str(plan), "--kind", "pre", env=env)
    assert proc.returncode == 0, proc.stderr
    assert webhook.events() == ["notice.sent"]
    notice = webhook.bodies[0]
    assert notice["evidence"]["plan"] == "test-plan" and notice["evidence"]["oncall"] == "Ada Lovelace"
    assert "test-plan" in notice["report"] and "--kind pre" in notice["next_command"]
    assert_no_secret(*webhook.raw)


def test_deploys_and_failed_backups_are_sent_without_any_secret(ops_ws: Path, webhook: WebhookReceiver,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in notify_env(webhook.url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MOBIUS_DATABASE_URL", f"postgresql://mobius:{DB_PASSWORD}@127.0.0.1:1/mobius")
    ws = load_workspace(ops_ws)
    notifier = notify.install(ws)
    assert notifier is not None
    try:
        with pytest.raises(OSError), recorded(ws, "backup.create", {"database": ws.database_url}):
            raise OSError(f"pg_dump: password {DB_PASSWORD} rejected for {ws.database_url}; token {TOKEN}")
        with recorded(ws, "env.deploy", {"env": "staging"}) as deploy:
            deploy.result = {"release": "r1", "backup": "backups/pre-deploy.tar.zst"}
        with pytest.raises(RuntimeError), recorded(ws, "env.deploy", {"env": "production"}):
            raise RuntimeError(f"health gate: /ready answered 503 (password {SMTP_PASSWORD})")
        with recorded(ws, "golden.check", {}) as other:  # not something people are told about
            other.result = {}
        with RecordStore.of(ws) as store:  # the orchestrator's record of a rollback that could not finish
            mid = store.start("migrate.run", {"plan": {"name": "p", "steps": [{"media.migrate": {}}]}})
            store.event(mid, "rollback.started", {"reason": "validation failed: checksums", "automatic": True})
            store.event(mid, "rollback.failed", {"reason": "validation failed: checksums",
                                                 "left": ["media.migrate: still applied; finish by hand: mobius "
                                                          "media rollback m-1 --yes"],
                                                 "checks": [{"name": "media.source.verified", "verdict": "fail",
                                                             "observed": 41, "threshold": 42}]})
            store.finish(mid, "rollback-failed", error=f"rollback of {mid} could not complete")
            later = store.start("migrate.run", {"plan": {"name": "q", "steps": []}})
            store.event(later, "monitor.duration.escalate", {"value": 30.5, "threshold": 20.0, "step": "backup"})
            store.event(later, "monitor.disk.stop", {"value": 0.03, "threshold": 0.05, "step": "backup"})
            store.event(later, "stopped", {"reason": "free disk 3.0% under the minimum 5%"})
            refused = store.start("migrate.run", {"plan": {"name": "r"}, "plan_path": "/plans/r.yaml"})
            store.finish(refused, "refused", error="preflight failed: backup.recent")
        assert notifier.flush(30)
    finally:
        notify.uninstall(ws)
    assert [b["event"] for b in webhook.bodies] == [
        "backup.failed", "env.deploy.completed", "env.deploy.failed", "migration.started", "rollback.started",
        "rollback.failed", "migration.started", "alert.duration", "alert.disk", "migration.stopped",
        "migration.started", "migration.refused"]
    backup, done, failed, _, started, stuck = webhook.bodies[:6]
    duration, disk, stopped, refused_body = webhook.bodies[7], webhook.bodies[8], webhook.bodies[9], webhook.bodies[11]
    assert duration["evidence"] == {"value": 30.5, "threshold": 20.0, "step": "backup"}
    assert disk["severity"] == "critical" and f"mobius migrate resume {later}" in disk["next_command"]
    assert stopped["evidence"]["reason"].startswith("free disk 3.0%")
    assert refused_body["evidence"]["reason"] == "preflight failed: backup.recent"
    assert refused_body["next_command"] == "mobius migrate plan /plans/r.yaml"
    assert started["severity"] == "critical" and "automatic rollback started" in started["summary"]
    assert stuck["severity"] == "critical" and "ROLLBACK FAILED" in stuck["summary"]
    assert stuck["evidence"]["left"][0].startswith("media.migrate: still applied")
    assert stuck["evidence"]["checks"] == ["media.source.verified: fail observed 41 threshold 42"]
    assert stuck["next_command"] == f"after fixing: mobius migrate rollback {mid} --yes"
    assert backup["severity"] == "critical" and "pg_dump: password **** rejected" in backup["evidence"]["error"]
    assert done["evidence"]["environment"] == "staging" and done["evidence"]["release"] == "r1"
    assert failed["next_command"] == "mobius rollback --env production --yes" and "503" in failed["text"]
    assert_no_secret(*webhook.raw)


def test_a_failed_backup_verification_is_recorded_and_sent(mobius, ops_ws: Path, webhook: WebhookReceiver) -> None:
    """Can fail: `backup verify` was not an operation, so a damaged backup found at 02:00 told nobody."""
    env = notify_env(webhook.url)
    made = mobius("-w", str(ops_ws), "--json", "backup", "create", "--archive", "--no-database", env=env)
    assert made.returncode == 0, made.stderr
    archive = Path(json.loads(made.stdout)["path"])
    damaged = bytearray(archive.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    archive.write_bytes(bytes(damaged))
    webhook.bodies.clear()
    webhook.raw.clear()
    proc = mobius("-w", str(ops_ws), "--json", "backup", "verify", str(archive), env=env)
    assert proc.returncode == 2, proc.stderr
    with RecordStore.of(load_workspace(ops_ws), read_only=True) as store:
        op = store.list(type="backup.verify")[0]
    assert op.status == "failed"
    sent = [b for b in webhook.bodies if b["event"] == "backup.failed"]
    assert len(sent) == 1 and sent[0]["operation"] == op.id and "verification failed" in sent[0]["text"]
    assert_no_secret(*webhook.raw)
