"""Items 1 and 19: game slugs are checked in one place; only `init` creates a workspace."""

from __future__ import annotations

from pathlib import Path

import pytest
from hardening_support import copy_preview


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me\n")
    return victim


@pytest.mark.parametrize("how", ["relative", "absolute", "newline"])
def test_golden_generate_refuses_a_slug_that_is_a_path(mobius, ws, preview, tmp_path, how):
    victim = _victim(tmp_path)
    video = copy_preview(preview, ws)
    game = {"relative": "../../../victim", "absolute": str(victim), "newline": "sushi-go\n"}[how]
    proc = mobius("golden", "generate", "--game", game, "--in", str(video), "--frames", "1", "-w", str(ws))
    assert proc.returncode == 1, proc.stderr
    assert "not a game slug" in proc.stderr and "Traceback" not in proc.stderr
    assert (victim / "precious.txt").read_text() == "keep me\n"
    assert sorted(p.name for p in victim.iterdir()) == ["precious.txt"]


@pytest.mark.parametrize("command", [
    ["golden", "check", "--game", "../../../victim", "--in", "x.mp4"],
    ["golden", "approve", "../victim"],
    ["golden", "update", "/abs/victim"],
    ["render", "../victim"],
    ["pipeline", "test", "../victim"],
])
def test_every_command_taking_a_slug_refuses_a_path(mobius, ws, command):
    proc = mobius(*command, "-w", str(ws))
    assert proc.returncode == 1, proc.stderr
    assert "not a game slug" in proc.stderr


@pytest.mark.parametrize("command", [
    ["config", "set", "MOBIUS_ENV", "staging"],
    ["db", "migrate", "--no-backup"],
    ["backup", "create"],
])
def test_a_mistyped_workspace_is_refused_not_created(mobius, tmp_path, command):
    typo = tmp_path / "wss"
    proc = mobius(*command, "-w", str(typo))
    assert proc.returncode == 1, proc.stderr
    assert "mobius init" in proc.stderr
    assert not typo.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = mobius(*command, "-w", str(empty))
    assert proc.returncode == 1, proc.stderr
    assert "not a Mobius workspace" in proc.stderr
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize("command", [["config", "show"], ["media", "manifest"]])
def test_workspace_pointing_at_a_file_is_exit_1_with_a_hint(mobius, ws, command):
    proc = mobius(*command, "--json", "-w", str(ws / ".env"))
    assert proc.returncode == 1, proc.stderr
    assert "is a file, not a folder" in proc.stderr and "--workspace" in proc.stderr
    assert '"ok": false' in proc.stdout


def test_init_still_creates_and_commands_accept_it(mobius, tmp_path):
    root = tmp_path / "fresh"
    assert mobius("init", str(root)).returncode == 0
    assert mobius("config", "show", "-w", str(root)).returncode == 0
