"""Notifications end to end: a real `mobius migrate run` notifies a real HTTP server and a real SMTP server."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from notify_support import MailReceiver, WebhookReceiver, assert_no_secret, notify_env
from tests.ops.conftest import write_plan

ERROR_RATE_PLAN = ("monitors: {sample_every: 0.05s, error_rate_rollback: {above: 10%, for: 0.3s}}")


def _history(mobius, root: Path, op_id: str) -> dict:
    code, out = mobius.json("-w", str(root), "history", op_id)
    assert code == 0
    return out


def _migration_id(mobius, root: Path) -> str:
    code, out = mobius.json("-w", str(root), "history", "--type", "migrate.run")
    return out["operations"][0]["id"]


def test_error_rate_rollback_notifies_in_order_with_evidence(mobius, ops_ws: Path, webhook: WebhookReceiver,
                                                              mailbox: MailReceiver, tls_cert) -> None:
    plan = write_plan(ops_ws, "  - backup: {}\n  - media.migrate: {to: media-v2}\n")
    plan.write_text(plan.read_text().replace("monitors: {sample_every: 0.1s}", ERROR_RATE_PLAN))
    proc = mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes",
                  env=notify_env(webhook.url, mailbox.url, cert=tls_cert[0],
                                 MOBIUS_FAULT="error-rate@media.migrate=0.5,slow-copy@chunk=60"))
    assert proc.returncode == 2, proc.stderr  # rolled back, as without notifications
    op_id = _migration_id(mobius, ops_ws)
    wanted = ["migration.started", "alert.error_rate", "rollback.started", "rollback.finished"]
    assert webhook.events() == wanted
    sent = [b["event"] for b in webhook.bodies]
    by_event = {b["event"]: b for b in webhook.bodies}
    for body in webhook.bodies:
        assert body["operation"] == op_id and op_id in body["text"] and body["next_command"] in body["text"]
        assert body["evidence"], body
    alert = by_event["alert.error_rate"]["evidence"]
    assert alert["value"] == 0.5 and alert["step"] == "media.migrate" and alert["threshold"] > 0
    started = by_event["rollback.started"]["evidence"]
    assert "error rate 50% above 10%" in started["reason"] and started["automatic"] is True
    finished = by_event["rollback.finished"]
    assert finished["evidence"]["undone"] == ["media.migrate: verified", "backup: verified"]
    assert finished["next_command"] == f"mobius migrate report {op_id}"
    assert mailbox.logins == ["oncall"] * len(sent)  # STARTTLS, then a login with the password from the setting
    assert [s.split(": ", 1)[1] for s in mailbox.subjects()] == [b["summary"] for b in webhook.bodies]
    assert all(rcpt == ["oncall@example.com", "lead@example.com"] for rcpt, _ in mailbox.mails)

    history = _history(mobius, ops_ws, op_id)
    delivered = [(e["data"]["destination"].split()[0], e["data"]["message"]) for e in history["events"]
                 if e["kind"] == "notify.delivered"]
    assert sorted(delivered) == sorted([(kind, event) for kind in ("webhook", "smtp") for event in sent])
    assert_no_secret(*webhook.raw, *mailbox.texts(), *(c for _, c in mailbox.mails), proc.stdout, proc.stderr,
                     (ops_ws / "state" / "operations.sqlite").read_bytes())


@pytest.mark.slow
def test_dead_and_failing_destinations_change_nothing_and_are_recorded(mobius, ops_ws: Path,
                                                                        webhook: WebhookReceiver) -> None:
    flaky = WebhookReceiver(fail_first=2)
    broken = WebhookReceiver(always_fail=True)
    dead = WebhookReceiver()
    dead.close()  # a destination that was killed: connection refused
    hung = socket.socket()  # one that takes the connection and never answers
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    hung_url = f"http://127.0.0.1:{hung.getsockname()[1]}/hook"
    try:
        plan = write_plan(ops_ws, "  - backup: {}\n")
        proc = mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes",
                      env=notify_env(dead.url, broken.url, flaky.url, webhook.url, hung_url))
        assert proc.returncode == 0, proc.stderr
        op_id = _migration_id(mobius, ops_ws)
        code, status = mobius.json("-w", str(ops_ws), "migrate", "status", op_id)
        assert status["migration"]["status"] == "completed"
        assert webhook.events() == ["migration.started", "migration.completed"]
        assert flaky.events() == ["migration.started", "migration.completed"] and flaky.failures == 2
        assert webhook.bodies[1]["report"].startswith("#")  # the post-migration report goes with it
        events = _history(mobius, ops_ws, op_id)["events"]
        failed = [e["data"] for e in events if e["kind"] == "notify.failed"]
        flaky_port = flaky.url.split(":")[2].split("/")[0]
        flaky_failed = [f for f in failed if f["destination"].endswith(flaky_port)]
        assert [(f["attempt"], f["retry_in"], f["gave_up"]) for f in flaky_failed] == [(1, 0.5, False), (2, 1.0, False)]
        broken_port = broken.url.split(":")[2].split("/")[0]
        broken_failed = [f for f in failed if f["destination"].endswith(broken_port)]
        assert broken_failed and all("HTTP 500" in f["error"] for f in broken_failed)
        assert broken_failed[-1]["gave_up"] is True
        dead_port = dead.url.split(":")[2].split("/")[0]
        dead_failed = [f for f in failed if f["destination"].endswith(dead_port)]
        assert dead_failed and "refused" in dead_failed[0]["error"].lower() and dead_failed[-1]["gave_up"]
        hung_port = str(hung.getsockname()[1])
        hung_given_up = {f["message"] for f in failed if f["destination"].endswith(hung_port) and f["gave_up"]}
        assert hung_given_up == {"migration.started", "migration.completed"}, failed
        assert_no_secret(*(str(e) for e in events))
    finally:
        flaky.close()
        broken.close()
        hung.close()


def test_notify_test_says_what_each_destination_answered(mobius, sample_workspace: Path, webhook: WebhookReceiver,
                                                          mailbox: MailReceiver, tls_cert) -> None:
    dead = WebhookReceiver()
    dead.close()
    code, out = mobius.json("-w", str(sample_workspace), "notify", "test",
                            env=notify_env(webhook.url, mailbox.url, dead.url, cert=tls_cert[0]))
    assert code == 2 and out["ok"] is False and "1 check(s) failed: notify.webhook" in out["error"], out
    assert webhook.events() == ["notify.test"] and len(mailbox.mails) == 1
    proc = mobius("-w", str(sample_workspace), "notify", "test", env=notify_env(webhook.url, mailbox.url,
                                                                              cert=tls_cert[0]))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("webhook http://127.0.0.1:") and "delivered (HTTP 200)" in lines[0]
    assert lines[1].startswith("smtp 127.0.0.1:") and "delivered (accepted for 2 recipient(s))" in lines[1]
    assert_no_secret(proc.stdout, proc.stderr, *webhook.raw, *mailbox.texts())


def test_notify_test_refuses_bad_settings_in_one_line(mobius, sample_workspace: Path) -> None:
    for value, words in [("", "names no destination"), ("ftp://files.example.com/x", "scheme 'ftp'"),
                         ("smtp://u:hunter2pw@mail.example.com?to=a@example.com", "does not go in the URL"),
                         ("smtp://mail.example.com:587", "needs recipients"),
                         ("smtp://mail.example.com?to=a@example.com&starttls=off", "only for a relay")]:
        proc = mobius("-w", str(sample_workspace), "notify", "test", env={"MOBIUS_NOTIFY": value})
        assert proc.returncode == 1, (value, proc.stderr)
        assert words in proc.stderr and "Traceback" not in proc.stderr and "hunter2pw" not in proc.stderr
        assert [line for line in proc.stderr.splitlines() if "error" in line][-1].startswith("mobius: error: ")
        assert len([line for line in proc.stderr.splitlines() if line.startswith("mobius: error")]) == 1


def test_smtp_without_starttls_sends_nothing(mobius, sample_workspace: Path, tls_cert) -> None:
    plain = MailReceiver(*tls_cert, tls=False)
    try:
        proc = mobius("-w", str(sample_workspace), "notify", "test", env=notify_env(plain.url, cert=tls_cert[0]))
        assert proc.returncode == 2
        assert "does not offer STARTTLS" in proc.stdout and plain.mails == []
    finally:
        plain.close()
