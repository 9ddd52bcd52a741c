"""Items 3, 5 and 6: every `.env` writer takes one lock and re-reads under it; values read back exactly
(no interpolation); one duplicate-key rule (the last wins) for settings, migrate and rollback."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hardening_support import MOBIUS, clean_env

from mobius.safety.envfile import read_env_file


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_config_set_delayed_in_its_rename_does_not_lose_a_concurrent_media_switch(mobius, ws, tmp_path):
    target = tmp_path / "moved"
    delayed = subprocess.Popen(["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=rename",
                                "-e", "inject=rename:delay_enter=4000000",
                                *MOBIUS, "config", "set", "MOBIUS_ENV", "staging", "-w", str(ws)],
                               env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # config set has read .env and sits in its delayed rename
    migrated = mobius("media", "migrate", "--to", str(target), "--yes", "--no-backup", "-w", str(ws))
    out, err = delayed.communicate(timeout=120)
    assert delayed.returncode == 0, err
    assert migrated.returncode == 0, migrated.stderr
    values = read_env_file(ws / ".env")
    assert values["MOBIUS_ENV"] == "staging"
    assert values["MOBIUS_LIBRARY_DIR"] == str(target), "the media switch was lost"
    code, shown = mobius.json("config", "show", "-w", str(ws))
    library = next(r for r in shown["settings"] if r["name"] == "MOBIUS_LIBRARY_DIR")
    assert library["value"] == str(target)


@pytest.mark.parametrize("value", ["../t${HOME}x", "it's \"quoted\" # not a comment", "two  spaces ",
                                   "back\\slash\\n 'single'"])
def test_a_setting_reads_back_exactly(mobius, ws, value):
    assert mobius("config", "set", "MOBIUS_LIBRARY_DIR", value, "-w", str(ws)).returncode == 0
    code, shown = mobius.json("config", "show", "-w", str(ws))
    assert code == 0
    library = next(r for r in shown["settings"] if r["name"] == "MOBIUS_LIBRARY_DIR")
    assert library["value"] == value


def test_migrate_to_a_dollar_path_round_trips_through_backup_and_rollback(mobius, ws):
    proc = mobius("media", "migrate", "--to", "../t${HOME}x", "--yes", "--no-backup", "-w", str(ws), cwd=ws)
    assert proc.returncode == 0, proc.stderr
    assert (ws.parent / "t${HOME}x").is_dir()
    assert mobius("media", "manifest", "-w", str(ws)).returncode == 0
    assert mobius("backup", "create", "-w", str(ws)).returncode == 0
    back = mobius("media", "rollback", "-w", str(ws))
    assert back.returncode == 0, back.stderr
    assert read_env_file(ws / ".env")["MOBIUS_LIBRARY_DIR"] == "uploads"


def test_duplicate_keys_one_rule_for_settings_migrate_and_rollback(mobius, ws, tmp_path):
    env = ws / ".env"
    env.write_text(env.read_text().replace("MOBIUS_LIBRARY_DIR=uploads",
                                           "MOBIUS_LIBRARY_DIR=first-not-used\nMOBIUS_LIBRARY_DIR=uploads"))
    code, shown = mobius.json("config", "show", "-w", str(ws))
    assert next(r for r in shown["settings"] if r["name"] == "MOBIUS_LIBRARY_DIR")["value"] == "uploads"
    code, migrated = mobius.json("media", "migrate", "--to", str(tmp_path / "t"), "--yes", "--no-backup",
                                 "-w", str(ws))
    assert code == 0
    assert "first-not-used" not in json.dumps(migrated)
    code, rolled = mobius.json("media", "rollback", "-w", str(ws))
    assert code == 0, rolled
    assert "first-not-used" not in json.dumps(rolled)
    assert read_env_file(env)["MOBIUS_LIBRARY_DIR"] == "uploads"
    code, shown = mobius.json("config", "show", "-w", str(ws))
    assert Path(next(r for r in shown["settings"] if r["name"] == "MOBIUS_LIBRARY_DIR")["value"]) == Path("uploads")


def test_init_creates_an_owner_only_env(tmp_path) -> None:
    """`.env` will hold database passwords and the API token: no other local user may read it."""
    from mobius.workspace.init import initialize

    initialize(tmp_path / "ws")
    assert (tmp_path / "ws" / ".env").stat().st_mode & 0o777 == 0o600
