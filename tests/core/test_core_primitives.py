"""The shared primitives: crash-safe folder swap, leftover sweep, the record store, results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mobius.config import load_workspace
from mobius.errors import VerificationError
from mobius.records import RecordStore, recorded
from mobius.results import Report, Verdict, at_least, failed, passed, skipped, to_jsonable
from mobius.safety.leftovers import sweep
from mobius.safety.swap import intent_path, recover_swap, swap_folder


def _tree(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def _contents(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_swap_moves_old_aside_and_new_in(tmp_path: Path) -> None:
    target, new = tmp_path / "uploads", tmp_path / "staging"
    _tree(target, {"a": "old"})
    _tree(new, {"a": "new", "b": "new"})
    old = swap_folder(new, target)
    assert _contents(target) == {"a": "new", "b": "new"}
    assert old is not None and _contents(old) == {"a": "old"}
    assert not intent_path(target).exists()


@pytest.mark.parametrize(("kill_at", "expected"), [(1, "old"), (2, "new")])
def test_swap_killed_at_each_rename_is_repaired_by_the_next_command(tmp_path: Path, kill_at: int,
                                                                     expected: str) -> None:
    """Killed before the first rename: nothing changed. Between the two: the target is missing until
    recovery puts the complete new tree there. Either way no content is lost."""
    target, new = tmp_path / "uploads", tmp_path / "staging"
    _tree(target, {"a": "old"})
    _tree(new, {"a": "new"})
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from mobius.safety import swap
        real = os.rename
        calls = []
        def rename(a, b):
            calls.append(a)
            if len(calls) == {kill_at} and Path(a).name in ("uploads", "staging"):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(a, b)
        swap.os.rename = rename
        swap.swap_folder(Path({str(new)!r}), Path({str(target)!r}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    recovery = recover_swap(target)
    assert recovery is not None
    assert _contents(target) == {"a": expected}
    assert not intent_path(target).exists()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("uploads.rollback.")]
    if expected == "new":
        assert recovery.action == "finished"
        assert [_contents(p) for p in aside] == [{"a": "old"}]
    else:
        assert aside == [] and _contents(new) == {"a": "new"}


def test_leftover_sweep_removes_only_dead_processes_temps(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    mine = tmp_path / f".mobius-tmp-{os.getpid()}-abcd-file"
    theirs = tmp_path / f".mobius-tmp-{dead_pid}-abcd-file"
    folder = tmp_path / f".mobius-tmp-{dead_pid}-abcd-dir"
    user = tmp_path / "user-file"
    for path in (mine, theirs, user):
        path.write_text("x")
    folder.mkdir()
    (folder / "inner").write_text("x")
    removed = sweep([tmp_path])
    assert set(removed) == {theirs, folder}
    assert mine.exists() and user.exists() and not theirs.exists() and not folder.exists()


def test_record_store_keeps_steps_events_and_masks_secrets(tmp_path: Path) -> None:
    ws = load_workspace(tmp_path)
    with recorded(ws, "db.sync", {"to": "postgresql://app:hunter2@db/prod", "api_token": "t0ken"}) as op:
        op.result = {"rows": 3}
    with RecordStore.of(ws) as store:
        [record] = store.list(type="db")
        assert record.status == "completed" and record.result == {"rows": 3}
        assert "hunter2" not in json.dumps(record.params) and "t0ken" not in json.dumps(record.params)
        store.step_started(record.id, 0, "backup")
        store.step_undo(record.id, 0, {"archive": "a.tar.zst"})
        store.step_finished(record.id, 0, "completed", evidence={"files": 3})
        store.event(record.id, "monitor.alert", {"error_rate": 0.07})
        again = store.get(record.id)
        assert again is not None and again.steps[0].undo == {"archive": "a.tar.zst"}
        assert [e.kind for e in store.events(record.id)] == ["monitor.alert"]
    assert "hunter2" not in (tmp_path / "state" / "operations.sqlite").read_bytes().decode("latin-1")


def test_a_failing_block_is_recorded_as_failed(tmp_path: Path) -> None:
    ws = load_workspace(tmp_path)
    with pytest.raises(RuntimeError), recorded(ws, "media.migrate"):
        raise RuntimeError("disk on fire")
    with RecordStore.of(ws) as store:
        [record] = store.list()
    assert record.status == "failed" and "disk on fire" in (record.error or "")


def test_report_verdicts_never_read_no_data_as_pass() -> None:
    assert Report("empty").verdict is Verdict.INCONCLUSIVE
    assert Report("only skipped", [skipped("service", "not configured")]).verdict is Verdict.INCONCLUSIVE
    assert at_least("disk", None, 0.1).verdict is Verdict.INCONCLUSIVE
    assert at_least("disk", 0.05, 0.1).verdict is Verdict.FAIL
    report = Report("validation", [passed("counts", 3), failed("checksums", 1, detail="1 file differs")])
    assert report.verdict is Verdict.FAIL
    with pytest.raises(VerificationError, match="checksums"):
        report.raise_if_failed()
    data = to_jsonable(report)
    assert data["verdict"] == "fail" and data["checks"][1]["observed"] == 1


def test_a_full_disk_is_described_as_such_and_a_bug_as_internal() -> None:
    import errno

    from mobius.errors import describe

    full = OSError(errno.ENOSPC, "No space left on device", "/backups/pack")
    assert describe(full) == "disk full: OSError: [Errno 28] No space left on device: '/backups/pack'"
    assert describe(TypeError("bad")) == "internal error: TypeError: bad"


def test_a_refusal_for_room_alone_is_short_of_resources() -> None:
    room = at_least("free disk", 10, 100, unit="bytes")
    assert Report("preflight", [passed("database", 3), room]).short_of_resources()
    assert not Report("preflight", [room, failed("database", None)]).short_of_resources()
    assert not Report("preflight", [passed("database", 3), at_least("free disk", 100, 10)]).short_of_resources()
