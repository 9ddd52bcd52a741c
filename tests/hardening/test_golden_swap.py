"""Item 8: a `golden restore` killed inside its tests/golden swap is finished by the next command."""

from __future__ import annotations

import shutil

import pytest
from hardening_support import copy_preview, kill_at_rename, rename_number

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")


def test_golden_restore_killed_at_the_golden_swap_is_finished_by_the_next_command(mobius, ws, preview, tmp_path):
    video = copy_preview(preview, ws)
    assert mobius("golden", "generate", "--game", "sushi-go", "--in", str(video), "--frames", "1,2",
                  "-w", str(ws)).returncode == 0
    code, backed = mobius.json("golden", "backup", "-w", str(ws))
    assert code == 0
    archive = backed["archive"]
    frames = sorted(p.name for p in (ws / "tests" / "golden" / "sushi-go" / "frames").iterdir())
    rehearsal = tmp_path / "rehearsal"
    shutil.copytree(ws, rehearsal, symlinks=True)
    args = ["golden", "restore", archive, "-w"]
    n = rename_number([*args, str(rehearsal)], rehearsal, tmp_path / "trace", "/tests/golden")

    killed = kill_at_rename([*args, str(ws)], ws, n)
    assert killed.returncode != 0
    assert not (ws / "tests" / "golden").exists(), "the kill landed between the two renames"

    after = mobius("golden", "check-all", "-w", str(ws))
    assert "finished an interrupted swap" in after.stderr
    assert "no goldens" not in after.stderr
    assert sorted(p.name for p in (ws / "tests" / "golden" / "sushi-go" / "frames").iterdir()) == frames
    again = mobius("golden", "restore", archive, "-w", str(ws))
    assert again.returncode == 0, again.stderr
    assert not list((ws / "tests").glob(".golden.old-*")), "previous copies are removed once recovered"
