"""The capabilities' own operations in the record store: `mobius history` reaches every backup, media
migration, database migration and golden approval, with its status, its own journal id (`ref`)
and, inside a migration plan, the plan's id as its parent."""

from __future__ import annotations

from pathlib import Path

from tests.ops.conftest import FAILING_MIGRATION, last_migration, write_plan


def _history(mobius, root: Path, *args: str) -> list[dict]:
    code, out = mobius.json("-w", str(root), "history", *args)
    assert code == 0, out
    return out["operations"]


def test_backup_and_media_migrate_are_recorded_with_their_ids(mobius, ops_ws: Path) -> None:
    code, backup = mobius.json("-w", str(ops_ws), "backup", "create", "--archive")
    assert code == 0, backup
    proc = mobius("-w", str(ops_ws), "media", "migrate", "--to", "media-v2", "--yes")
    assert proc.returncode == 0, proc.stderr
    code, migrations = mobius.json("-w", str(ops_ws), "media", "migrations")
    media_id = migrations["migrations"][-1]["id"]

    ops = _history(mobius, ops_ws)
    created = [op for op in ops if op["type"] == "backup.create"]
    media = [op for op in ops if op["type"] == "media.migrate"]
    assert len(media) == 1 and media[0]["status"] == "completed" and media[0]["ref"] == media_id
    assert media[0]["params"]["target"].endswith("media-v2")
    assert media[0]["result"]["copied_files"] > 0
    # two backups: the one asked for, and the one media migrate takes first (its child)
    assert len(created) == 2 and all(op["status"] == "completed" for op in created)
    mine = next(op for op in created if op["parent"] is None)
    assert mine["ref"] == str(Path(backup["path"]))
    assert Path(mine["ref"]).is_file()
    nested = next(op for op in created if op["parent"] is not None)
    assert nested["parent"] == media[0]["id"]
    assert [op["id"] for op in _history(mobius, ops_ws, "--type", "backup")] == [op["id"] for op in created]

    proc = mobius("-w", str(ops_ws), "media", "rollback", media_id)
    assert proc.returncode == 0, proc.stderr
    rolled = _history(mobius, ops_ws, "--type", "media.rollback")
    assert [(op["status"], op["ref"]) for op in rolled] == [("completed", media_id)]


def test_a_failing_db_migrate_is_recorded_failed(mobius, ops_ws: Path) -> None:
    (ops_ws / "migrations" / "0005_broken.sql").write_text(FAILING_MIGRATION)
    before = _history(mobius, ops_ws, "--type", "db.migrate")
    proc = mobius("-w", str(ops_ws), "db", "migrate", "--to", "5")
    assert proc.returncode != 0
    ops = _history(mobius, ops_ws, "--type", "db.migrate")
    assert len(ops) == len(before) + 1
    assert ops[0]["status"] == "failed" and ops[0]["params"]["to"] == 5
    assert "0005" in ops[0]["error"] or "no_such_table" in ops[0]["error"], ops[0]["error"]
    code, dry = mobius.json("-w", str(ops_ws), "db", "migrate", "--to", "4", "--dry-run")
    assert len(_history(mobius, ops_ws, "--type", "db.migrate")) == len(ops)  # a dry run is no operation


def test_steps_of_a_plan_carry_the_migration_as_parent(mobius, ops_ws: Path) -> None:
    plan = write_plan(ops_ws, "  - backup: {}\n  - db.migrate: {to: 4}\n")
    proc = mobius("-w", str(ops_ws), "migrate", "run", str(plan), "--yes")
    assert proc.returncode == 0, proc.stderr
    migration = last_migration(mobius, ops_ws)
    children = [op for op in _history(mobius, ops_ws) if op["parent"] == migration["id"]]
    assert sorted(op["type"] for op in children) == ["backup.create", "db.migrate"]
    assert all(op["status"] == "completed" and op["ref"] for op in children)
    db_step = next(s for s in migration["steps"] if s["name"] == "db.migrate")
    assert next(op for op in children if op["type"] == "db.migrate")["ref"] == db_step["undo"]["run_id"]


def test_records_call_takes_its_type_status_and_bound_from_the_call(tmp_path: Path) -> None:
    """A type named by an argument, a failure returned (not raised) recorded `failed`, lists kept whole."""
    from mobius.config import load_workspace
    from mobius.records import RecordStore, records_call

    @records_call(lambda args: args["kind"], status=lambda out: "completed" if out["ok"] else "failed", bound=None)
    def check(ws, kind: str, n: int) -> dict:  # noqa: ANN001
        return {"ok": n < 150, "items": list(range(n))}

    @records_call("short")
    def short(ws, n: int) -> list[int]:  # noqa: ANN001
        return list(range(n))

    ws = load_workspace(tmp_path)
    check(ws, "demo.check", 10)
    check(ws, "demo.check", 200)
    short(ws, 200)
    with RecordStore.of(ws) as store:
        failed, passed = store.list(type="demo.check")
        kept = store.list(type="short")[0]
    assert (failed.status, passed.status) == ("failed", "completed") and failed.params == {"kind": "demo.check",
                                                                                           "n": 200}
    assert failed.result["items"] == list(range(200))
    assert kept.result[:100] == list(range(100)) and kept.result[100:] == ["... 100 more"]
