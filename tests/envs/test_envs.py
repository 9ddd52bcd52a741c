"""Named environments end to end through the real `mobius` CLI: two SQLite databases and two folders."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mobius.backup.repository import Repository
from mobius.config import load_workspace

from .conftest import table_rows, tree, write_env

SECRET = "hunter2-s3cr3t-value"
ADD_DESIGNER = """-- migrate:up
ALTER TABLE games ADD COLUMN designer TEXT;
UPDATE games SET designer = 'unknown';
-- migrate:down
ALTER TABLE games DROP COLUMN designer;
-- migrate:verify
SELECT COUNT(*) FROM games WHERE designer IS NULL;
"""
DB_PASSWORD = "pgpass-9f8e7d"


def test_every_command_takes_env(mobius, two_envs: Path) -> None:
    code, out = mobius.json("--env", "staging", "config", "show", "-w", str(two_envs))
    assert code == 0
    rows = {r["name"]: r for r in out["settings"]}
    assert rows["MOBIUS_LIBRARY_DIR"] == {"name": "MOBIUS_LIBRARY_DIR", "value": "staging/uploads",
                                          "source": str(two_envs / "environments" / "staging.env")}
    assert rows["MOBIUS_ENV"]["value"] == "staging"
    code, out = mobius.json("backup", "create", "--archive", "--env", "production", "-w", str(two_envs))
    assert code == 0, out
    assert Path(out["path"]).parent == two_envs / "prod" / "backups"
    code, out = mobius.json("env", "list", "-w", str(two_envs), env={"MOBIUS_ENV": "staging"})
    assert [e["name"] for e in out["environments"]] == ["production", "staging"]
    # MOBIUS_ENV selects the environment file when it exists
    code, out = mobius.json("config", "show", "-w", str(two_envs), env={"MOBIUS_ENV": "production"})
    assert {r["name"]: r["value"] for r in out["settings"]}["MOBIUS_LIBRARY_DIR"] == "prod/uploads"


def test_diff_exit_codes_and_no_secret_anywhere(mobius, two_envs: Path) -> None:
    write_env(two_envs, "a", api_token=SECRET, database_url=f"postgresql://app:{DB_PASSWORD}@db.a/app",
              backup_keep=3, golden_per_os="true")
    write_env(two_envs, "b", api_token=SECRET + "-rotated", database_url="postgresql://app:other@db.a/app",
              backup_keep=5, service_url="http://b.example")
    outputs = []
    for extra in ([], ["--json"], ["-v", "--log-format", "json"]):
        proc = mobius("env", "diff", "a", "b", "-w", str(two_envs), *extra)
        assert proc.returncode == 2, proc.stderr
        outputs += [proc.stdout, proc.stderr]
    code, out = mobius.json("env", "diff", "a", "b", "-w", str(two_envs))
    entries = {e["key"]: e for e in out["entries"]}
    assert entries["MOBIUS_API_TOKEN"]["secret"] and entries["MOBIUS_API_TOKEN"]["a"].startswith("sha256:")
    assert entries["MOBIUS_API_TOKEN"]["a"] != entries["MOBIUS_API_TOKEN"]["b"]
    assert "password sha256:" in entries["MOBIUS_DATABASE_URL"]["a"]
    assert entries["MOBIUS_GOLDEN_PER_OS"]["status"] == "only_a"
    assert entries["MOBIUS_SERVICE_URL"]["status"] == "only_b"
    show = mobius("env", "show", "a", "-w", str(two_envs), "--json")
    outputs += [show.stdout, show.stderr]
    same = mobius("env", "diff", "a", "a", "-w", str(two_envs))
    assert same.returncode == 0 and "same settings" in same.stdout
    files = [p for folder in ("logs", "state") for p in (two_envs / folder).rglob("*") if p.is_file()]
    assert files, "the commands wrote logs"
    everything = "\n".join(outputs) + "\n".join(p.read_bytes().decode("utf-8", "replace") for p in files)
    for secret in (SECRET, DB_PASSWORD, "other@"):
        assert secret not in everything


def test_validate_reports_each_check(mobius, two_envs: Path) -> None:
    code, out = mobius.json("env", "validate", "production", "-w", str(two_envs))
    assert code == 0, out
    names = [c["name"] for c in out["checks"]]
    assert names == ["settings", "library folder", "backups folder", "backups outside the library", "database",
                     "free disk", "codecs"]
    assert "schema version 3" in out["checks"][4]["observed"]


@pytest.mark.slow
def test_promote_end_to_end_then_only_changes(mobius, two_envs: Path) -> None:
    root = two_envs
    code, plan = mobius.json("env", "promote", "--from", "staging", "--to", "production", "--dry-run", "-w", str(root))
    assert code == 0, plan
    statuses = {s["step"]: s["status"] for s in plan["steps"]}
    assert statuses == {"plan": "rehearsed", "backup": "described only", "database copy": "described only",
                        "library sync": "described only", "settings": "described only", "validate": "rehearsed"}
    assert plan["plan"]["settings_to_follow"] == ["MOBIUS_BACKUP_KEEP"]
    assert plan["plan"]["schema_version"] == {"staging": 3, "production": 3}
    assert table_rows(root, "production")["games"] != table_rows(root, "staging")["games"]  # dry run changed nothing

    code, out = mobius.json("env", "promote", "--from", "staging", "--to", "production", "--yes", "-w", str(root))
    assert code == 0, out
    assert table_rows(root, "production") == table_rows(root, "staging")
    assert tree(root / "prod" / "uploads") == tree(root / "staging" / "uploads")
    prod_env = (root / "environments" / "production.env").read_text()
    assert "MOBIUS_BACKUP_KEEP=4" in prod_env and "MOBIUS_DATABASE_URL=sqlite:///prod.db" in prod_env
    # the restore point is a snapshot in production's repository, named where its prune reads protected ones
    assert out["backup"] in Repository(root / "prod" / "backups").snapshot_ids()
    protected = (root / "prod" / "backups" / "retention-protected.promote.production.txt").read_text()
    assert protected == out["backup"] + "\n"
    assert [s["status"] for s in out["steps"]] == ["done"] * 6
    # staging's dump was only the copy's: once the copy is proven it is gone (each promote left one before)
    assert sorted(p.name for p in (root / "prod" / "backups").glob("mobius_db_*_sync_*")) == []

    code, again = mobius.json("env", "promote", "--from", "staging", "--to", "production", "--yes", "-w", str(root))
    assert code == 0
    assert again["plan"]["library_sync"]["files"] == 0 and again["plan"]["nothing_to_do"] is True
    assert {s["step"]: s["status"] for s in again["steps"]} == {
        "backup": "skipped", "database copy": "skipped", "library sync": "skipped", "settings": "skipped",
        "validate": "done"}
    changed = next(p for p in (root / "staging" / "uploads").rglob("*") if p.is_file())
    changed.write_bytes(b"new cover art")
    code, third = mobius.json("env", "promote", "--from", "staging", "--to", "production", "--yes", "-w", str(root))
    assert code == 0 and third["plan"]["library_sync"]["files"] == 1
    assert tree(root / "prod" / "uploads") == tree(root / "staging" / "uploads")
    code, history = mobius.json("env", "promote", "--from", "staging", "--to", "staging", "-w", str(root))
    assert code == 1


@pytest.mark.parametrize("command", [["env", "promote", "--from", "staging", "--to", "production", "--yes"],
                                     ["deploy", "--env", "production"]])
def test_target_short_of_disk_alone_is_refused_with_exit_5(mobius, two_envs: Path, command: list[str]) -> None:
    """The free-disk check (real statvfs of production's backups) fails under a minimum no disk meets: the
    runner refuses before anything changes, with the documented exit code of a missing resource."""
    root = two_envs
    with (root / "environments" / "production.env").open("a") as f:
        f.write("MOBIUS_DEPLOY_MIN_FREE_MB=999999999\n")
    before = table_rows(root, "production"), tree(root / "prod" / "uploads")
    backups = sorted((root / "prod" / "backups").rglob("*")) if (root / "prod" / "backups").exists() else []
    proc = mobius(*command, "-w", str(root))
    assert proc.returncode == 5, proc.stderr
    assert "refused: preflight failed: free disk; nothing was changed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (table_rows(root, "production"), tree(root / "prod" / "uploads")) == before
    assert (sorted((root / "prod" / "backups").rglob("*")) if (root / "prod" / "backups").exists() else []) == backups


# fail: a failed check (one of ours); crash: a TypeError, as a bug would raise (not one of ours)
@pytest.mark.parametrize("kind", ["fail", "crash"])
def test_promote_failure_after_db_copy_restores_target_exactly(mobius, two_envs: Path, kind: str) -> None:
    root = two_envs
    prod_db = root / "prod.db"
    schema = sqlite3.connect(prod_db).execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    rows, library = table_rows(root, "production"), tree(root / "prod" / "uploads")
    settings = (root / "environments" / "production.env").read_bytes()
    proc = mobius("env", "promote", "--from", "staging", "--to", "production", "--yes", "-w", str(root),
                  env={"MOBIUS_FAULT": f"{kind}@done:database copy"})
    assert proc.returncode == 2, proc.stderr
    assert "restored" in proc.stderr and "promoted" not in proc.stdout and "Traceback" not in proc.stderr
    assert sqlite3.connect(prod_db).execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall() \
        == schema
    assert table_rows(root, "production") == rows
    assert tree(root / "prod" / "uploads") == library
    assert (root / "environments" / "production.env").read_bytes() == settings
    assert [p.name for p in (root / "prod").iterdir()] == sorted(["uploads", "backups"], reverse=True) or \
        sorted(p.name for p in (root / "prod").iterdir()) == ["backups", "uploads"]
    from mobius.records import RecordStore

    store = RecordStore.of(load_workspace(root, env="production"))
    op = store.list(type="env.promote")[0]
    assert op.status == "rolled-back"  # the runner undid the step from its recorded handle
    phases = store.get(op.id).steps[1].undo["phases"]
    assert [p["step"] for p in phases][:3] == ["snapshot", "backup", "database copy"]


def test_a_promote_failed_before_its_copy_leaves_no_dump_of_the_source(mobius, two_envs: Path) -> None:
    # A's dump is taken beside B's backup, for the copy; a promote that fails before the copy took it removes it
    root = two_envs
    proc = mobius("env", "promote", "--from", "staging", "--to", "production", "--yes", "-w", str(root),
                  env={"MOBIUS_FAULT": "crash@done:backup"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(p.name for p in (root / "prod" / "backups").glob("mobius_db_*_sync_*")) == []
    assert sorted(p.name for p in (root / "prod" / "backups").glob("mobius_db_*")) != []  # B's own dumps stay


@pytest.mark.slow
def test_deploy_rollback_round_trip_with_health_gate(mobius, two_envs: Path, ready_server) -> None:
    root = two_envs
    url = f"http://127.0.0.1:{ready_server.server_address[1]}"
    env_file = root / "environments" / "production.env"
    with env_file.open("a") as f:
        f.write(f"MOBIUS_SERVICE_URL={url}\nMOBIUS_HEALTH_INTERVAL_S=0.05\nMOBIUS_HEALTH_SUCCESSES=3\n"
                "MOBIUS_HEALTH_TIMEOUT_S=1\n")
    (root / "migrations").mkdir(exist_ok=True)
    (root / "migrations" / "0004_add_designer.sql").write_text(ADD_DESIGNER)
    code, dry = mobius.json("deploy", "--env", "production", "--dry-run", "-w", str(root))
    assert code == 0, dry
    assert {s["step"]: s["evidence"] for s in dry["steps"]}["migrations"] == "0004_add_designer"
    assert {s["step"]: s["status"] for s in dry["steps"]}["pipeline test"] == "rehearsed"
    assert {s["step"]: s["status"] for s in dry["steps"]}["restart"] == "not configured"
    assert {s["step"]: s["status"] for s in dry["steps"]}["health gate"] == "rehearsed"
    before_rows, before_tree, before_settings = table_rows(root, "production"), tree(root / "prod" / "uploads"), \
        env_file.read_bytes()
    code, out = mobius.json("deploy", "--env", "production", "-w", str(root))
    assert code == 0, out
    statuses = {s["step"]: s["status"] for s in out["steps"]}
    assert statuses["health gate"] == "done" and statuses["restart"] == "not configured"
    assert statuses["pipeline test"] == "done"
    evidence = {s["step"]: s["evidence"] for s in out["steps"]}
    assert evidence["migrations"].startswith("rehearsed on a copy") and "version 4" in evidence["migrations"]
    assert out["changed"]["schema_version"] == [3, 4]
    release = out["release"]
    # the environment moves on: new files, rows, settings
    (root / "prod" / "uploads" / "new.txt").write_text("added after the release\n")
    sqlite3.connect(root / "prod.db").execute("DELETE FROM games").connection.commit()
    with env_file.open("a") as f:
        f.write("MOBIUS_BACKUP_KEEP=9\n")
    code, back = mobius.json("rollback", "--env", "production", "--yes", "-w", str(root))
    assert code == 0, back
    assert table_rows(root, "production") == before_rows
    assert tree(root / "prod" / "uploads") == before_tree
    assert env_file.read_bytes() == before_settings
    code, listed = mobius.json("releases", "--env", "production", "-w", str(root))
    assert [r["kind"] for r in listed["releases"]] == ["rollback", "deploy"]
    assert listed["releases"][1]["id"] == release

    ready_server.status = 503
    proc = mobius("deploy", "--env", "production", "-w", str(root))
    assert proc.returncode == 4
    assert "did not answer 200" in proc.stderr and "deployed release" not in proc.stdout


def test_failed_rollback_says_what_is_left_and_exits_2(mobius, two_envs: Path, ready_server) -> None:
    root = two_envs
    (root / "games" / "sushi-go.yaml").unlink()  # the self-test is reported as skipped: no game specs
    url = f"http://127.0.0.1:{ready_server.server_address[1]}"
    code, out = mobius.json("deploy", "--env", "production", "-w", str(root))
    assert code == 0
    with (root / "environments" / "production.env").open("a") as f:
        f.write(f"MOBIUS_SERVICE_URL={url}\nMOBIUS_HEALTH_INTERVAL_S=0.05\nMOBIUS_HEALTH_TIMEOUT_S=0.3\n")
    ready_server.status = 500  # the service never becomes ready after the restore
    # the restored settings (from the deploy's backup) have no service URL: point it through the process
    proc = mobius("rollback", "--env", "production", "--yes", "-w", str(root),
                  env={"MOBIUS_SERVICE_URL": url, "MOBIUS_HEALTH_INTERVAL_S": "0.05", "MOBIUS_HEALTH_TIMEOUT_S": "0.3"})
    assert proc.returncode == 2
    assert "state left: library, database and settings restored" in proc.stderr
    assert "rolled production back" not in proc.stdout


# fail: one of ours; crash: a TypeError, as a bug would raise. Both right after the restore phase was recorded.
@pytest.mark.parametrize("kind", ["fail", "crash"])
def test_a_rollback_failing_after_its_restore_says_the_restore_is_done(mobius, two_envs: Path, kind: str) -> None:
    root = two_envs
    (root / "games" / "sushi-go.yaml").unlink()
    code, _ = mobius.json("deploy", "--env", "production", "-w", str(root))
    assert code == 0
    proc = mobius("rollback", "--env", "production", "--yes", "-w", str(root),
                  env={"MOBIUS_FAULT": f"{kind}@done:restore"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "state left: library, database and settings restored from" in proc.stderr, proc.stderr
    assert "the state before the rollback is in snapshot" in proc.stderr, proc.stderr
    if kind == "crash":  # a bug's traceback is in the log file, not on the screen
        logged = "".join(p.read_text() for p in (root / "logs").glob("*.jsonl"))
        assert "env.rollback.crashed" in logged and "Traceback" in logged


def test_retention_keeps_the_backup_the_newest_rollback_needs(mobius, two_envs: Path) -> None:
    root = two_envs
    (root / "games" / "sushi-go.yaml").unlink()
    code, out = mobius.json("deploy", "--env", "production", "-w", str(root))
    assert code == 0
    needed = out["backup"]
    for _ in range(2):
        code, made = mobius.json("--env", "production", "backup", "create", "--keep", "1", "-w", str(root))
        assert code == 0, made
    repository = Repository(root / "prod" / "backups")
    assert needed in repository.snapshot_ids() and len(repository.snapshot_ids()) == 2  # the newest and the needed
    assert (root / "prod" / "backups" / "retention-protected.production.txt").read_text().strip() == needed
    code, restored = mobius.json("rollback", "--env", "production", "--yes", "-w", str(root))
    assert code == 0 and restored["archive"] == needed, restored


def test_bad_input_one_line_and_exit_code(mobius, two_envs: Path, tmp_path: Path) -> None:
    root = two_envs
    proc = mobius("--env", "nowhere", "backup", "list", "-w", str(root))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "unknown environment 'nowhere'" in proc.stderr
    (root / "environments" / "broken.env").write_text("MOBIUS_LIBRARY_DIR=x\nthis is not a setting\n")
    proc = mobius("env", "validate", "broken", "-w", str(root))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "line 2" in proc.stderr
    write_env(root, "down", database_url="postgresql://app:pw@127.0.0.1:1/app", deploy_min_free_mb=1)
    proc = mobius("env", "validate", "down", "-w", str(root))
    assert proc.returncode == 2 and "database" in proc.stderr.splitlines()[-1] and "pw@" not in proc.stderr
    proc = mobius("deploy", "--env", "down", "-w", str(root))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = mobius("env", "show", "../etc", "-w", str(root))
    assert proc.returncode == 1 and "invalid environment name" in proc.stderr
    assert json.loads(mobius("env", "diff", "staging", "nowhere", "-w", str(root), "--json").stdout)["exit_code"] == 1
