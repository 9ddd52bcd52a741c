"""An exception's text can carry a database URL with its password; the record store must never keep it."""
from pathlib import Path

from mobius.records import RecordStore

PASSWORD = "Pw-never-stored-7731"
ERROR = f"could not connect to postgresql://mobius:{PASSWORD}@db.internal:5432/games: timeout"


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())


def test_operation_and_step_errors_are_masked_on_disk(tmp_path):
    path = tmp_path / "state" / "operations.sqlite"
    with RecordStore(path) as store:
        op_id = store.start("db.migrate")
        store.step_started(op_id, 0, "db.migrate")
        store.step_finished(op_id, 0, "failed", error=ERROR)
        store.set_status(op_id, "rolling-back", error=ERROR)
        store.finish(op_id, "failed", error=ERROR)
        record = store.get(op_id)
    assert record.status == "failed"
    assert "db.internal:5432/games" in record.error  # the rest of the message is kept for the reader
    assert PASSWORD not in record.error
    assert PASSWORD.encode() not in _all_bytes(path.parent)
