"""Several processes creating the same record store at once all succeed (CI saw two `backup create` at once
fail with "database is locked": SQLite refuses the switch to WAL without waiting)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from mobius.records import RecordStore

PROCESSES = 6
ROUNDS = 12


def _record_one(path: str, barrier: multiprocessing.synchronize.Barrier) -> str:  # type: ignore[name-defined]
    barrier.wait()
    try:
        with RecordStore(Path(path)) as store:
            return store.start("test.concurrent", {})
    except Exception as exc:  # noqa: BLE001 - the test reports what any process met
        return f"error: {exc!r}"


def test_processes_creating_one_store_at_once_all_record(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    failures: list[str] = []
    for round_ in range(ROUNDS):
        path = tmp_path / f"round{round_}" / "state" / "operations.sqlite"
        with context.Manager() as manager:
            barrier = manager.Barrier(PROCESSES)
            with context.Pool(PROCESSES) as pool:
                ids = pool.starmap(_record_one, [(str(path), barrier)] * PROCESSES)
        failures += [outcome for outcome in ids if outcome.startswith("error")]
        if not failures:
            with RecordStore(path, read_only=True) as store:
                assert sorted(op.id for op in store.list()) == sorted(ids)
    assert failures == []
