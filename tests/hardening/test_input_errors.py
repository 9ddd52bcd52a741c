"""Items 4 and 18: input at fault is exit 1 with one line naming the cause; values that would inject a
setting are refused before anything changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _one_line_exit_1(proc) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mobius: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_a_non_utf8_env_is_exit_1(mobius, ws):
    (ws / ".env").write_bytes(b"MOBIUS_ENV=\xff\xfe\n")
    assert "not UTF-8" in _one_line_exit_1(mobius("config", "show", "-w", str(ws)))


def test_an_env_that_is_a_folder_is_exit_1_naming_it(mobius, ws):
    (ws / ".env").unlink()
    (ws / ".env").mkdir()
    line = _one_line_exit_1(mobius("config", "set", "MOBIUS_ENV", "staging", "-w", str(ws)))
    assert ".env is a folder" in line and ".mobius-tmp" not in line


def test_a_library_that_is_a_symlink_loop_is_exit_1(mobius, ws):
    os.symlink("loop-b", ws / "loop-a")
    os.symlink("loop-a", ws / "loop-b")
    (ws / ".env").write_text((ws / ".env").read_text().replace("MOBIUS_LIBRARY_DIR=uploads",
                                                              "MOBIUS_LIBRARY_DIR=loop-a"))
    for command in (["backup", "create"], ["media", "manifest"]):
        assert "symlink loop" in _one_line_exit_1(mobius(*command, "-w", str(ws)))


@pytest.mark.parametrize("ratio", ["nan", "inf", "-1"])
def test_min_free_ratio_must_be_finite(mobius, ws, tmp_path, ratio):
    proc = mobius("media", "migrate", "--to", str(tmp_path / "t"), "--min-free-ratio", ratio, "--yes",
                  "--no-backup", "-w", str(ws))
    assert "--min-free-ratio" in _one_line_exit_1(proc)
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("frames", ["nan", "5,inf"])
def test_golden_frames_must_be_finite(mobius, ws, frames):
    proc = mobius("golden", "generate", "--game", "sushi-go", "--in", "x.mp4", "--frames", frames, "-w", str(ws))
    assert "--frames" in _one_line_exit_1(proc)


def test_a_20_digit_migration_version_is_exit_1(mobius, ws):
    (ws / "migrations").mkdir(exist_ok=True)
    (ws / "migrations" / "12345678901234567890_big.sql").write_text(
        "-- migrate:up\nCREATE TABLE big (id INTEGER);\n-- migrate:down\nDROP TABLE big;\n")
    assert "digits" in _one_line_exit_1(mobius("db", "migrate", "--no-backup", "-w", str(ws)))


def test_a_folder_named_like_a_migration_is_exit_1(mobius, ws):
    (ws / "migrations" / "0003_x.sql").mkdir(parents=True)
    assert "0003_x.sql is not a file" in _one_line_exit_1(mobius("db", "migrate", "--no-backup", "-w", str(ws)))


@pytest.mark.parametrize("value", ["uploads\nMOBIUS_DATABASE_URL=sqlite:///evil.db #", "a\rb", "tab\there", "bell\x07"])
def test_config_set_refuses_control_characters(mobius, ws, value):
    before = (ws / ".env").read_bytes()
    proc = mobius("config", "set", "MOBIUS_LIBRARY_DIR", value, "-w", str(ws))
    assert "control character" in _one_line_exit_1(proc)
    assert (ws / ".env").read_bytes() == before


def test_media_migrate_refuses_a_target_with_a_newline_before_copying(mobius, ws, tmp_path):
    target = "../t\nMOBIUS_BACKUP_KEEP=1 #"
    before = (ws / ".env").read_bytes()
    proc = mobius("media", "migrate", "--to", target, "--yes", "--no-backup", "-w", str(ws), cwd=ws)
    assert "control character" in _one_line_exit_1(proc)
    assert "preflight" not in proc.stdout, "refused before any check or copy"
    assert (ws / ".env").read_bytes() == before
    assert not [p for p in Path(ws.parent).iterdir() if p.name.startswith("t\n")]


def test_an_error_naming_an_argument_with_escape_sequences_shows_them_escaped(mobius, ws):
    """A name holding a terminal escape sequence or a newline is named in the one error line with
    those characters escaped (\\xNN): nothing reaches the terminal raw, and the line stays one line."""
    proc = mobius("backup", "verify", "x\x01\x1b[31m\nfake.tar", "-w", str(ws))
    line = _one_line_exit_1(proc)
    assert "\x1b" not in proc.stderr and "\x01" not in proc.stderr
    assert "x\\x01\\x1b[31m\\x0afake.tar" in line
