"""Items 10-14: file modes kept or owner-only, secrets masked everywhere, no password on a command line."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SECRET = "s3cretpw"
QUERY_URL = f"postgresql://u@127.0.0.1:1/db?host=127.0.0.1&password={SECRET}"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_set_keeps_a_private_env_mode(mobius, ws):
    (ws / ".env").chmod(0o600)
    assert mobius("config", "set", "MOBIUS_ENV", "staging", "-w", str(ws)).returncode == 0
    assert _mode(ws / ".env") == 0o600
    target = ws.parent / "moved"
    proc = mobius("media", "migrate", "--to", str(target), "--yes", "--no-backup", "-w", str(ws))
    assert proc.returncode == 0, proc.stderr
    assert _mode(ws / ".env") == 0o600
    assert mobius("media", "rollback", "-w", str(ws)).returncode == 0
    assert _mode(ws / ".env") == 0o600


def test_archives_and_dumps_are_owner_only(mobius, ws):
    code, created = mobius.json("backup", "create", "--archive", "-w", str(ws))
    assert code == 0
    assert _mode(Path(created["path"])) == 0o600
    code, dumped = mobius.json("db", "dump", "-w", str(ws))
    assert code == 0
    assert _mode(Path(dumped["path"])) == 0o600
    before = set((ws / "backups").iterdir())
    code, _ = mobius.json("db", "restore", dumped["path"], "--yes", "-w", str(ws))
    assert code == 0
    new_dumps = [p for p in set((ws / "backups").iterdir()) - before if p.name.startswith("mobius_db_")
                 and not p.name.endswith(".sha256")]
    assert new_dumps, "db restore takes a dump of what it replaces"
    assert all(_mode(p) == 0o600 for p in new_dumps)


def test_config_set_masks_a_password_in_its_output(mobius, ws):
    url = f"postgresql://user:{SECRET}@h/db"
    proc = mobius("config", "set", "MOBIUS_DATABASE_URL", url, "-w", str(ws))
    assert proc.returncode == 0 and SECRET not in proc.stdout + proc.stderr
    code, out = mobius.json("config", "set", "MOBIUS_DATABASE_URL", url + "2", "-w", str(ws))
    assert code == 0 and SECRET not in json.dumps(out)
    assert out["value"] == "postgresql://user:****@h/db2" and out["previous"] == "postgresql://user:****@h/db"


def test_a_password_in_the_query_string_is_masked_in_show_errors_and_logs(mobius, ws):
    env = {"MOBIUS_DATABASE_URL": QUERY_URL}
    shown = mobius("config", "show", "--json", "-w", str(ws), env=env)
    assert shown.returncode == 0 and SECRET not in shown.stdout
    failed = mobius("db", "status", "--json", "-w", str(ws), env=env)
    assert failed.returncode == 3
    assert "password=****" in failed.stderr
    assert SECRET not in failed.stdout + failed.stderr
    logs = "".join(p.read_text() for p in (ws / "logs").glob("*.jsonl"))
    assert "db status" in logs and SECRET not in logs


@pytest.mark.postgres
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_pg_tools_never_get_the_password_on_their_command_line(ws, pg_url, tmp_path, where):
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    if where == "userinfo":
        with_password = url.set(password=SECRET).render_as_string(hide_password=False)
    else:
        with_password = url.render_as_string(hide_password=False) + f"?password={SECRET}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    env["MOBIUS_DATABASE_URL"] = with_password
    base = [sys.executable, "-m", "mobius", "-w", str(ws)]
    assert subprocess.run([*base, "db", "migrate", "--no-backup"], env=env, capture_output=True).returncode == 0
    trace = tmp_path / "execve.trace"
    proc = subprocess.run(["strace", "-f", "-qq", "-s", "4096", "-e", "trace=execve", "-o", str(trace),
                           *base, "--json", "db", "dump"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    dumped = json.loads(proc.stdout)["path"]
    subprocess.run(["strace", "-f", "-qq", "-s", "4096", "-e", "trace=execve", "-o", str(tmp_path / "r.trace"),
                    *base, "db", "restore", dumped, "--yes"], env=env, capture_output=True, check=True)
    calls = trace.read_text() + (tmp_path / "r.trace").read_text()
    assert "pg_dump" in calls and "psql" in calls
    assert SECRET not in calls


def test_record_stores_and_logs_are_owner_only(mobius, ws):
    """Records hold plans, evidence and paths; logs name secrets' places: 0600, -wal and -shm included."""
    for store in (ws / "state").glob("*.sqlite*"):
        store.unlink()
    shutil.rmtree(ws / "logs", ignore_errors=True)
    assert mobius("config", "set", "MOBIUS_ENV", "staging", "--yes", "-w", str(ws)).returncode == 0
    assert mobius("backup", "create", "-w", str(ws)).returncode == 0
    created = [p for p in (ws / "state").rglob("*") if p.is_file() and ".sqlite" in p.name]
    logs = [p for p in (ws / "logs").rglob("*") if p.is_file()]
    assert created and logs
    assert {p.name: oct(_mode(p)) for p in created + logs if _mode(p) != 0o600} == {}
