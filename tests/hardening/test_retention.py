"""Item 20: retention never deletes an archive another running `backup create` is about to report."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from hardening_support import MOBIUS, clean_env


def _events(ws: Path) -> list[tuple[str, dict]]:
    found = []
    for log in (ws / "logs").glob("*backup-create.jsonl"):
        for line in log.read_text().splitlines():
            found.append((log.name, json.loads(line)))
    return found


def test_concurrent_creates_with_keep_1_never_delete_an_archive_before_its_run_reported_it(ws):
    for _round in range(2):
        runs = [subprocess.Popen([*MOBIUS, "backup", "create", "--archive", "--keep", "1", "--json", "-w", str(ws)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
                for _ in range(3)]
        for run in runs:
            out, err = run.communicate(timeout=300)
            assert run.returncode == 0, err
            assert json.loads(out)["ok"] is True
    events = _events(ws)
    owner = {e["archive"]: log for log, e in events if e["event"] == "backup.done"}
    finished = {log: e["timestamp"] for log, e in events if e["event"] == "command.finished"}
    deletions = [(e["archive"], e["timestamp"]) for _log, e in events if e["event"] == "backup.retention.deleted"]
    assert deletions, "retention ran"
    for archive, when in deletions:
        assert when > finished[owner[archive]], f"{archive} was deleted while the run that made it still ran"
    archives = [a for a in (ws / "backups").glob("mobius_library_*.tar*") if not a.name.endswith((".sha256", ".jsonl"))]
    assert 1 <= len(archives) <= 3
