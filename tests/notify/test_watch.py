"""`mobius migrate status ID --watch` and `mobius history ID --watch` in a real terminal (tmux), following a
real running migration until it ends and exiting with its exit code."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from tests.ops.conftest import write_plan

from mobius.config import load_workspace
from mobius.records import RecordStore, recorded

TMUX = shutil.which("tmux")
ERROR_RATE_PLAN = "monitors: {sample_every: 0.05s, error_rate_rollback: {above: 10%, for: 0.3s}}"


class Terminal:
    """A detached tmux session on its own server socket: `type` a line, `screen()` reads what is shown."""

    def __init__(self, folder: Path):
        if TMUX is None:
            pytest.fail("tmux is not installed (apt-get install tmux; .ci/run installs it)")
        self.socket = f"mobius-watch-{uuid.uuid4().hex[:8]}"
        self._tmux("new-session", "-d", "-s", "w", "-x", "150", "-y", "45", "-c", str(folder),
                   "bash --norc --noprofile")

    def _tmux(self, *args: str) -> str:
        return subprocess.run([TMUX, "-L", self.socket, *args], check=True, capture_output=True, text=True,
                              timeout=30).stdout

    def type(self, line: str) -> None:
        self._tmux("send-keys", "-t", "w", line, "Enter")

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "w")

    def wait_for(self, pattern: str, timeout: float = 120) -> str:
        """The screen once `pattern` (a regular expression) shows on it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if re.search(pattern, shown):
                return shown
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} never showed; the screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


def _start_migration(root: Path, plan: Path, fault: str) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    env.update({"MOBIUS_FAULT": f"{fault},slow-copy@chunk=100"})
    proc = subprocess.Popen([sys.executable, "-m", "mobius", "-w", str(root), "migrate", "run", str(plan), "--yes"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ws = load_workspace(root)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with RecordStore.of(ws, read_only=True) as store:
            found = store.list(type="migrate.run", limit=1)
        if found:
            return proc, found[0].id
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the migration was never recorded")


def _mobius(root: Path, *args: str) -> str:
    return " ".join(shlex.quote(a) for a in [sys.executable, "-m", "mobius", "-w", str(root), *args])


@pytest.mark.slow
def test_migrate_status_watch_follows_steps_until_completed(ops_ws: Path) -> None:
    plan = write_plan(ops_ws, "  - backup: {}\n  - media.migrate: {to: media-v2}\n")
    run, op_id = _start_migration(ops_ws, plan, "slow@step:media.migrate=3")
    term = Terminal(ops_ws)
    try:
        term.type(_mobius(ops_ws, "migrate", "status", op_id, "--watch") + "; echo watch-exit=$?")
        shown = term.wait_for(r"backup +done")
        assert f"migrate.run {op_id}  test-plan  running" in shown and "media.migrate" in shown
        shown = term.wait_for(r"watch-exit=\d", timeout=180)
        assert run.wait(60) == 0, run.stderr.read() if run.stderr else ""
        assert f"migrate.run {op_id} ended: completed; exit 0" in shown and "watch-exit=0" in shown
        assert "validate         done" in shown and "4/4 steps done" in shown
    finally:
        term.close()
        if run.poll() is None:
            run.kill()
        run.wait()


@pytest.mark.slow
def test_history_watch_exits_with_the_rolled_back_migrations_code(ops_ws: Path) -> None:
    plan = write_plan(ops_ws, "  - backup: {}\n  - media.migrate: {to: media-v2}\n")
    plan.write_text(plan.read_text().replace("monitors: {sample_every: 0.1s}", ERROR_RATE_PLAN))
    run, op_id = _start_migration(ops_ws, plan, "error-rate@media.migrate=0.5,slow@step:media.migrate=1")
    term = Terminal(ops_ws)
    try:
        term.type(_mobius(ops_ws, "history", op_id, "--watch") + "; echo watch-exit=$?")
        shown = term.wait_for(r"watch-exit=\d", timeout=180)
        assert run.wait(60) == 2
        assert "ended: rolled-back; exit 2" in shown and "watch-exit=2" in shown
        assert "error_rate rollback (value=0.5" in shown and "rollback.done" in shown
    finally:
        term.close()
        if run.poll() is None:
            run.kill()
        run.wait()


def test_watch_of_an_ended_operation_returns_its_code_without_a_terminal(mobius, sample_workspace: Path) -> None:
    ws = load_workspace(sample_workspace)
    with recorded(ws, "backup.create", {}) as ok:
        ok.result = {"files": 1}
    with pytest.raises(RuntimeError), recorded(ws, "db.migrate", {}):
        raise RuntimeError("boom")
    failed_id = RecordStore.of(ws, read_only=True).list(type="db.migrate")[0].id
    proc = mobius("-w", str(sample_workspace), "history", ok.id, "--watch")
    assert proc.returncode == 0 and f"backup.create {ok.id} ended: completed; exit 0" in proc.stdout
    assert "\x1b[" not in proc.stdout  # a pipe gets plain lines, no redrawing
    proc = mobius("-w", str(sample_workspace), "history", failed_id, "--watch")
    assert proc.returncode == 2 and "error: boom" in proc.stdout
    code, out = mobius.json("-w", str(sample_workspace), "history", failed_id, "--watch")
    assert code == 2 and out["exit_code"] == 2 and out["operation"]["status"] == "failed"
    proc = mobius("-w", str(sample_workspace), "history", "--watch")
    assert proc.returncode == 1 and "--watch follows one operation" in proc.stderr
    proc = mobius("-w", str(sample_workspace), "migrate", "status", "--watch")
    assert proc.returncode == 1 and "no migrate.run recorded" in proc.stderr
