"""Plans written by a careless or hostile hand (issue 23 items 3, 11, 12): refused when read with one
`PLAN:LINE` error, or run without a crash escaping the rollback, and never printed raw."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.ops.conftest import CHEAP_STEPS, last_migration, state, step_statuses, write_plan

from mobius.config import load_workspace
from mobius.records import RecordStore


def _error_lines(proc) -> list[str]:  # noqa: ANN001
    return [line for line in proc.stderr.splitlines() if line.startswith("mobius: error:")]


def _migrations(mobius, root: Path) -> list[dict]:  # noqa: ANN001
    code, out = mobius.json("-w", str(root), "history", "--type", "migrate.run")
    assert code == 0, out
    return out["operations"]


@pytest.mark.parametrize(("steps", "expected"), [
    ('  - backup: {keep: "3"}\n', "plan.yaml:7: steps.0: backup `keep`: Input should be a valid integer (got \"3\")"),
    ("  - backup: {keep: 1.5}\n", "plan.yaml:7: steps.0: backup `keep`: Input should be a valid integer (got 1.5)"),
    ("  - backup: {keep: true}\n", "plan.yaml:7: steps.0: backup `keep`: Input should be a valid integer (got true)"),
    ("  - backup:\n      keep: 2\n      junk: x\n",
     "plan.yaml:9: steps.0: backup: unknown parameter 'junk' (known: keep, database)"),
    ("  - media.migrate: {to: media-v2, backup: 'no'}\n", "plan.yaml:7: steps.0: media.migrate `backup`: Input "
                                                         "should be a valid boolean"),
])
def test_step_parameters_are_checked_when_the_plan_is_read(mobius, ops_ws: Path, steps: str, expected: str) -> None:
    """Issue 23 item 3: `keep: "3"` crashed mid-run (TypeError), `keep: 1.5` after writing an archive and
    `keep: true` pruned to one backup. Types are exact and unknown keys refused, before anything runs."""
    (ops_ws / "backups").mkdir(exist_ok=True)
    backups = sorted(p.name for p in (ops_ws / "backups").iterdir())
    plan = write_plan(ops_ws, steps)
    for command in ("plan", "run"):
        proc = mobius("-w", str(ops_ws), "migrate", command, str(plan), *(["--yes"] if command == "run" else []))
        assert proc.returncode == 1, proc.stderr
        lines = _error_lines(proc)
        assert len(lines) == 1 and expected in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert sorted(p.name for p in (ops_ws / "backups").iterdir()) == backups
    assert _migrations(mobius, ops_ws) == []


def test_a_crash_inside_a_step_that_is_not_ours_rolls_back(mobius, ops_ws: Path) -> None:
    """Issue 23 item 3: an exception other than MobiusError inside a step (here a TypeError, as `keep: "3"`
    raised) left the migration `running (orphaned)` with the library switched, and `resume` repeated the
    crash. Now it rolls back like any failure: the library, .env and database are as before."""
    before = state(ops_ws)
    plan = write_plan(ops_ws, "  - backup: {}\n  - media.migrate: {to: media-v2}\n  - db.migrate: {to: 4}\n")
    proc = mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes",
                  env={"MOBIUS_FAULT": "crash@inside:db.migrate"})
    assert proc.returncode == 2, proc.stderr
    lines = _error_lines(proc)
    assert len(lines) == 1 and "rolled back: step db.migrate failed: internal error: TypeError" in lines[0], lines
    migration = last_migration(mobius, ops_ws)
    assert migration["status"] == "rolled-back", migration
    assert [(s["name"], s["status"]) for s in migration["steps"]] == [
        ("preflight", "done"), ("backup", "rolled-back"), ("media.migrate", "rolled-back"),
        ("db.migrate", "rolled-back")]
    assert state(ops_ws) == before
    proc = mobius("-w", str(ops_ws), "migrate", "resume", migration["id"])
    assert proc.returncode == 1 and "is rolled-back; nothing to resume" in proc.stderr, proc.stderr
    assert state(ops_ws) == before



def test_a_crash_outside_a_steps_own_undo_is_a_recorded_rollback_failure(mobius, ops_ws: Path) -> None:
    """Can fail: a bug between two undos (here the fault point before media.migrate's undo) escaped the
    rollback and left the migration `rolling-back` with no `rollback.failed` event (so nobody was told).
    Now it is `rollback-failed`, says what is still applied, and `migrate rollback` finishes the job."""
    before = state(ops_ws)
    plan = write_plan(ops_ws, "  - backup: {}\n  - media.migrate: {to: media-v2}\n  - db.migrate: {to: 4}\n")
    proc = mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes",
                  env={"MOBIUS_FAULT": "crash@inside:db.migrate,crash@rollback:media.migrate"})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    migration = last_migration(mobius, ops_ws)
    assert migration["status"] == "rollback-failed", migration
    assert ("media.migrate", "done") in step_statuses(migration) and ("db.migrate", "rolled-back") in \
        step_statuses(migration)
    code, history = mobius.json("-w", str(ops_ws), "history", migration["id"])
    failed = [e for e in history["events"] if e["kind"] == "rollback.failed"]
    assert len(failed) == 1 and "TypeError" in failed[0]["data"]["error"]
    assert any(line.startswith("media.migrate: still applied") for line in failed[0]["data"]["left"])
    proc = mobius("-w", str(ops_ws), "migrate", "rollback", migration["id"], "--yes")
    assert proc.returncode == 0, proc.stderr
    assert last_migration(mobius, ops_ws)["status"] == "rolled-back"
    assert state(ops_ws) == before


EVIL_NAME = r'"evil\e[2J\e]0;PWNED\x07\nFAKE: migration completed OK"'


def test_a_plans_text_never_reaches_the_terminal_or_a_report_raw(mobius, ops_ws: Path) -> None:
    """Issue 23 item 11: a plan's name with escape sequences and a newline printed a forged line in
    `migrate plan` and `run`, and the Markdown report embedded <script> and <img onerror> raw."""
    plan = write_plan(ops_ws, "  - backup: {}\n")
    plan.write_text(plan.read_text().replace("name: test-plan", f"name: {EVIL_NAME}")
                    .replace("oncall: Ada Lovelace", 'oncall: "<script>alert(1)</script>"')
                    .replace("approver: Grace Hopper", 'approver: "<img src=x onerror=alert(1)>"'))
    outputs = [mobius("-w", str(ops_ws), "migrate", "plan", str(plan)),
               mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes")]
    assert outputs[-1].returncode == 0, outputs[-1].stderr
    op_id = last_migration(mobius, ops_ws)["id"]
    outputs += [mobius("-w", str(ops_ws), "migrate", "status"), mobius("-w", str(ops_ws), "migrate", "status", op_id),
                mobius("-w", str(ops_ws), "history", op_id)]
    reports = {fmt: mobius("-w", str(ops_ws), "migrate", "report", op_id, "--format", fmt) for fmt in ("md", "html")}
    notice = mobius("-w", str(ops_ws), "migrate", "report", str(plan), "--kind", "pre")
    out_file = ops_ws / "report.md"
    written = mobius("-w", str(ops_ws), "migrate", "report", op_id, "--out", str(out_file))
    for proc in [*outputs, *reports.values(), notice, written]:
        assert proc.returncode == 0, proc.stderr
        for stream in (proc.stdout, proc.stderr):
            assert "\x1b" not in stream and "\x07" not in stream, stream
            assert not any(line.startswith("FAKE") for line in stream.splitlines()), stream
    assert "evil\\x1b[2J\\x1b]0;PWNED\\x07\\x0aFAKE: migration completed OK" in outputs[1].stdout
    for text in (reports["md"].stdout, reports["html"].stdout, notice.stdout, out_file.read_text()):
        assert "<script" not in text and "<img" not in text, text
        assert "&lt;script" in text and "&lt;img src=x onerror=alert(1)" in text
        assert "\x1b" not in text and not any(line.startswith("FAKE") for line in text.splitlines())
    code, out = mobius.json("-w", str(ops_ws), "migrate", "status", op_id)
    assert json.dumps(out["migration"]["params"]["plan"]["name"]) == EVIL_NAME.replace(r"\e", r"\u001b").replace(
        r"\x07", r"\u0007"), "--json keeps the text (json escapes it)"


def test_yaml_aliases_and_duplicate_keys_are_refused_with_their_line(mobius, ops_ws: Path) -> None:
    """Issue 23 item 12: nested aliases under a step parameter expanded 9x per level (a 609-byte plan took
    12.7 s and 246 MB at 5 levels), and `steps:` given twice silently ran only the second list. Also
    (item 18's plan case) deep nesting and a plan that is not UTF-8 were "internal error" tracebacks."""
    bomb = write_plan(ops_ws, "  - backup: {junk: *c}\n", extra="", name="bomb.yaml")
    bomb.write_text(bomb.read_text().replace("steps:\n", 'a: &a ["lol", "lol", "lol", "lol", "lol"]\n'
                                                           "b: &b [*a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b]\n"
                                                           "steps:\n"))
    twice = write_plan(ops_ws, "  - backup: {}\n", extra="steps:\n  - media.migrate: {to: media-v2}\n",
                       name="twice.yaml")
    keys = write_plan(ops_ws, "  - backup: {keep: 2, keep: 5}\n", name="keys.yaml")
    deep = write_plan(ops_ws, "  - backup: {junk: " + "[" * 20000 + "]" * 20000 + "}\n", name="deep.yaml")
    latin = write_plan(ops_ws, "  - backup: {}\n", name="latin.yaml")
    latin.write_bytes(latin.read_bytes().replace(b"Ada Lovelace", "Ada L\u00f8velace".encode("latin-1")))
    for plan, expected in ((bomb, "bomb.yaml:7: an alias (*a) is not accepted in a plan"),
                           (twice, "twice.yaml:12: key 'steps' given twice (first on line 6)"),
                           (keys, "keys.yaml:7: key 'keep' given twice (first on line 7)"),
                           (deep, "deep.yaml:7: nested deeper than 32 levels"),
                           (latin, "latin.yaml:4: not UTF-8 text (byte 0xf8 at offset")):
        for command in ("plan", "run"):
            proc = mobius("-w", str(ops_ws), "migrate", command, str(plan), *(["--yes"] if command == "run" else []))
            assert proc.returncode == 1, proc.stderr
            lines = _error_lines(proc)
            assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert _migrations(mobius, ops_ws) == []
    assert not (ops_ws / "media-v2").exists()


def test_ctrl_c_inside_a_step_records_stopped_and_resume_finishes(mobius, ops_ws: Path, reference: dict) -> None:
    """Anything that ends the run outside the handled failures (Ctrl-C here) leaves `stopped`, never a
    `running` record, and `resume` ends where an uninterrupted run ends."""
    plan = write_plan(ops_ws, CHEAP_STEPS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    # the Ctrl-C cuts the sleep short: 30 s only so that on a loaded machine it still lands inside the step
    env["MOBIUS_FAULT"] = "slow@inside:media.migrate=30"
    # SIGINT as in a terminal, even when the suite runs as a background job (which starts with SIGINT ignored)
    proc = subprocess.Popen([sys.executable, "-m", "mobius", "-w", str(ops_ws), "migrate", "run", str(plan), "--yes"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    inside = False
    while not inside and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        if (ops_ws / "state" / "operations.sqlite").exists():
            with RecordStore.of(load_workspace(ops_ws)) as store:
                ops = store.list(type="migrate.run")
                inside = any(s.name == "media.migrate" and s.status == "running" and s.undo
                             for s in (store.get(ops[0].id).steps if ops else []))
    assert inside, "media.migrate never started"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    migration = last_migration(mobius, ops_ws)
    assert migration["status"] == "stopped" and migration["error"] == "stopped by KeyboardInterrupt", migration
    proc = mobius("-w", str(ops_ws), "migrate", "resume", migration["id"])
    assert proc.returncode == 0, proc.stderr
    assert state(ops_ws) == reference["state"]
    assert step_statuses(last_migration(mobius, ops_ws)) == reference["steps"]


def test_a_run_recorded_with_parameters_now_refused_is_not_resumed_but_can_be_undone(mobius, ops_ws: Path) -> None:
    """Issue 23 item 3, for records left by the old version: a run killed by `keep: "3"` was resumed into
    the same crash. Now resume refuses it in one line (nothing changes), and rollback still undoes it."""
    assert mobius("-w", str(ops_ws), "backup", "create").returncode == 0
    before = state(ops_ws)
    plan = write_plan(ops_ws, "  - media.migrate: {to: media-v2}\n  - backup: {}\n")
    proc = mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes", env={"MOBIUS_FAULT": "kill@step:backup"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    migration = last_migration(mobius, ops_ws)
    with sqlite3.connect(ops_ws / "state" / "operations.sqlite") as db:  # as the old version recorded it
        db.execute("UPDATE operations SET params = json_set(params, '$.plan.steps[1]', json(?)) WHERE id = ?",
                   ('{"backup": {"keep": "3"}}', migration["id"]))
    proc = mobius("-w", str(ops_ws), "migrate", "resume", migration["id"])
    assert proc.returncode == 1, proc.stderr
    lines = _error_lines(proc)
    assert len(lines) == 1 and "steps.1: backup `keep`: Input should be a valid integer" in lines[0], proc.stderr
    assert f"mobius migrate rollback {migration['id']}" in lines[0]
    assert last_migration(mobius, ops_ws)["status"] == "running"
    proc = mobius("-w", str(ops_ws), "migrate", "rollback", migration["id"], "--yes")
    assert proc.returncode == 0, proc.stderr
    assert last_migration(mobius, ops_ws)["status"] == "rolled-back"
    assert state(ops_ws) == before


def test_a_run_recorded_with_a_step_this_version_does_not_know_is_refused_in_one_line(mobius, ops_ws: Path) -> None:
    """Steps are looked up by name, importing only their capability's module: a record naming a step no module
    registers (a newer release's, or a typo in a hand-edited record) is refused in one line, exit 1, unchanged."""
    assert mobius("-w", str(ops_ws), "backup", "create").returncode == 0
    plan = write_plan(ops_ws, "  - media.migrate: {to: media-v2}\n  - backup: {}\n")
    proc = mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes", env={"MOBIUS_FAULT": "kill@step:backup"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    migration = last_migration(mobius, ops_ws)
    with sqlite3.connect(ops_ws / "state" / "operations.sqlite") as db:
        db.execute("UPDATE operations SET params = json_set(params, '$.plan.steps[1]', json(?)) WHERE id = ?",
                   ('{"backup.archive": {}}', migration["id"]))
    for command in (("resume", migration["id"]), ("rollback", migration["id"], "--yes")):
        proc = mobius("-w", str(ops_ws), "migrate", *command)
        assert proc.returncode == 1, proc.stderr
        lines = _error_lines(proc)
        assert len(lines) == 1 and "steps.1: 'backup.archive'" in lines[0] and "Traceback" not in proc.stderr
        assert last_migration(mobius, ops_ws)["status"] == "running"
