"""The executor contract on the local pool: results as they finish, retries, failures named, settings
without secrets, batches; the CLI's refusals of a bad scheduler address."""

from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mobius.config import load_workspace
from mobius.errors import InputError, VerificationError
from mobius.executor import Item, batches, hash_batch, open_executor, portable_workspace, run_items
from mobius.executor.local import LocalExecutor
from mobius.progress import NoProgress
from mobius.records import RecordStore

from .conftest import clean_env

CALLS: dict[str, int] = {}
LOCK = threading.Lock()


def flaky(ws, value: str) -> str:
    """Fails with an OSError the first time for 'flaky', always for 'broken', never otherwise."""
    with LOCK:
        CALLS[value] = CALLS.get(value, 0) + 1
        count = CALLS[value]
    if value == "broken" or (value == "flaky" and count == 1):
        raise OSError(f"disk hiccup on {value}")
    if value == "bad-input":
        raise InputError(f"no spec for {value}")
    return value.upper()


@pytest.fixture
def ws(tmp_path: Path):
    return load_workspace(tmp_path)


def test_items_finish_retry_and_fail_by_name(ws):
    CALLS.clear()
    items = [Item(v, v) for v in ("a", "flaky", "broken", "b")]
    run = run_items(ws, "demo", flaky, items, executor=LocalExecutor(workers=2, processes=False), retries=2)
    assert [o.key for o in run.outcomes] == ["a", "flaky", "broken", "b"]  # item order, whatever finished first
    assert run.values() == ["A", "FLAKY", "B"]
    assert CALLS["flaky"] == 2 and CALLS["broken"] == 3  # retried up to `retries`, then failed
    with pytest.raises(VerificationError) as caught:
        run.raise_if_failed()
    assert caught.value.exit_code == 2
    assert "broken" in caught.value.message and "disk hiccup on broken" in caught.value.message
    assert "finished (kept) a" in caught.value.details
    record = RecordStore.of(ws).list(type="demo")[0]
    assert record.status == "failed" and record.result["done"] == ["a", "flaky", "b"]
    assert list(record.result["failed"]) == ["broken"]


class _CtrlCAfter(NoProgress):
    """A progress that is interrupted (Ctrl-C) after `n` items have finished."""

    def __init__(self, n: int):
        self.n = n

    def advance(self, amount: float = 1) -> None:
        self.n -= int(amount)
        if self.n == 0:
            raise KeyboardInterrupt


def test_an_interrupted_run_is_recorded_with_the_items_that_finished(ws):
    items = [Item(v, v) for v in ("a", "b", "c", "d")]
    with pytest.raises(KeyboardInterrupt):
        run_items(ws, "demo", flaky, items, executor=LocalExecutor(workers=1, processes=False),
                  progress=_CtrlCAfter(2))
    record = RecordStore.of(ws).list(type="demo")[0]
    assert record.status == "interrupted"
    assert record.params == {"items": ["a", "b", "c", "d"], "executor": "local (1 threads)"}
    assert len(record.result["done"]) == 2 and record.result["failed"] == {}


def test_a_run_inside_an_operation_adds_no_record_of_its_own(ws):
    from mobius.records import recorded

    with recorded(ws, "outer") as outer:
        run_items(ws, "demo", flaky, [Item("a", "a")], executor=LocalExecutor(workers=1, processes=False))
        outer.result = "done"
    assert [op.type for op in RecordStore.of(ws).list()] == ["outer"]


def test_on_outcome_sees_each_outcome_as_it_arrives_and_its_error_stops_the_run(ws):
    CALLS.clear()
    seen: list[tuple[str, bool]] = []
    run = run_items(ws, "demo", flaky, [Item(v, v) for v in ("a", "broken", "b")],
                    executor=LocalExecutor(workers=1, processes=False), retries=0,
                    on_outcome=lambda o: seen.append((o.key, o.ok)))
    assert seen == [("a", True), ("broken", False), ("b", True)] and len(run.outcomes) == 3

    def refuse(outcome):  # a caller whose commit fails: the run stops there, the error is the caller's
        raise RuntimeError(f"cannot save {outcome.key}")

    CALLS.clear()
    with pytest.raises(RuntimeError, match="cannot save a"):
        run_items(ws, "demo", flaky, [Item(v, v) for v in ("a", "b")],
                  executor=LocalExecutor(workers=1, processes=False), on_outcome=refuse)
    assert CALLS.get("b") is None  # nothing after the failed commit ran
    assert RecordStore.of(ws).list(type="demo")[0].status == "failed"


def test_an_input_error_is_not_retried_and_keeps_exit_1(ws):
    CALLS.clear()
    run = run_items(ws, "demo", flaky, [Item("bad-input", "bad-input"), Item("a", "a")],
                    executor=LocalExecutor(workers=2, processes=False))
    assert CALLS["bad-input"] == 1
    with pytest.raises(InputError) as caught:
        run.raise_if_failed()
    assert caught.value.exit_code == 1 and "no spec for bad-input" in caught.value.message


def test_cancel_drops_unfinished_items(ws):
    executor = LocalExecutor(workers=1, processes=False)
    outcomes = executor.results(flaky, ws, [Item(v, v) for v in ("a", "b", "c")])
    assert next(outcomes).value == "A"
    executor.cancel()
    assert list(outcomes) == []


def test_settings_travel_without_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MOBIUS_DATABASE_URL", "postgresql://mobius:hunter2@db/mobius")
    monkeypatch.setenv("MOBIUS_LIBRARY_DIR", "/srv/shared/uploads")
    monkeypatch.setenv("MOBIUS_GOLDEN_PER_OS", "1")
    ws = load_workspace(tmp_path)
    portable = portable_workspace(ws)
    payload = pickle.dumps(portable)
    assert b"hunter2" not in payload
    assert portable.settings.library_dir == "/srv/shared/uploads" and portable.settings.golden_per_os is True
    monkeypatch.delenv("MOBIUS_LIBRARY_DIR")  # a worker's environment does not change what it was given
    assert pickle.loads(payload).library == "/srv/shared/uploads"


def test_hash_batches_equal_hashlib_on_every_executor(ws, tmp_path: Path):
    files = tmp_path / "files"
    files.mkdir()
    for n in range(1200):
        (files / f"{n:05}.bin").write_bytes(n.to_bytes(4, "big") * 100)
    (files / "gone").symlink_to(files / "missing")
    paths = sorted(str(p) for p in files.iterdir())
    assert [len(b) for b in batches(paths, 500)] == [500, 500, 201]
    items = [Item(f"batch-{n}", chunk) for n, chunk in enumerate(batches(paths, 500))]
    expected = [(p, hashlib.sha256(Path(p).read_bytes()).hexdigest()) for p in paths[:-1]]
    for processes in (False, True):
        run = run_items(ws, "hash", hash_batch, items, executor=LocalExecutor(workers=2, processes=processes))
        digests = [pair for batch in run.values() for pair in batch]
        assert digests[:-1] == expected
        assert digests[-1][1].startswith("error: ")


def test_unknown_executor_is_bad_input(ws):
    with pytest.raises(InputError), open_executor(ws, "ray"):
        pass


@pytest.mark.parametrize(("scheduler", "code", "words"), [
    ("http://scheduler:8786", 1, "must start with tcp:// or tls://"),
    ("tls://127.0.0.1:9", 3, "no TLS CA file"),
])
def test_bad_scheduler_setting_is_refused_in_one_line(sample_workspace: Path, scheduler: str, code: int, words: str):
    pytest.importorskip("distributed")
    env = {**clean_env(), "MOBIUS_DASK_SCHEDULER": scheduler}
    proc = subprocess.run([sys.executable, "-m", "mobius", "pipeline", "test", "sushi-go", "--executor", "dask",
                           "-w", str(sample_workspace)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
