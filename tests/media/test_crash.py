"""Killed with SIGKILL at any point, `mobius media migrate` run again finishes with identical trees."""

from __future__ import annotations

from pathlib import Path

import pytest
from media_support import Paused, snapshot, temps

from mobius.safety.envfile import read_env_file

pytestmark = pytest.mark.slow

ARGS = ["media", "migrate", "--no-backup", "--yes"]


def _finish(mobius, ws: Path, target: Path) -> dict:
    code, out = mobius.json(*ARGS, "--to", str(target), "-w", str(ws))
    assert code == 0, out
    return out


@pytest.mark.parametrize("point", ["copy:2", "verify:3", "publish:2", "commit:1", "switch", "switched"])
def test_killed_at_any_point_resumes_to_identical_trees(mobius, media_ws: Path, tmp_path: Path, point: str):
    source = media_ws / "uploads"
    before = snapshot(source)
    target = tmp_path / "new"
    run = Paused(media_ws, [*ARGS, "--to", str(target), "--workers", "2"], point)
    run.kill()
    left = temps(target)
    if point == "copy:2":
        assert left, "a kill mid-file leaves a partial temp file behind"
    if point in ("copy:2", "verify:3", "publish:2", "commit:1", "switch"):
        assert read_env_file(media_ws / ".env")["MOBIUS_LIBRARY_DIR"] == "uploads"
    out = _finish(mobius, media_ws, target)
    assert not temps(target)
    assert snapshot(target) == before
    assert snapshot(source) == before
    assert read_env_file(media_ws / ".env")["MOBIUS_LIBRARY_DIR"] == str(target)
    record = out["migration"]
    assert record["status"] == "completed" and record["previous_value"] == "uploads"
    assert record["source_manifest_sha256"] == record["target_manifest_sha256"]
    if point not in ("switch", "switched"):
        assert out["resumed"] and out["removed_temps"] == len(left)


def test_killed_repeatedly_while_copying_slowly_still_converges(mobius, media_ws: Path, tmp_path: Path):
    source = media_ws / "uploads"
    before = snapshot(source)
    target = tmp_path / "new"
    for nth in (3, 10, 25):
        run = Paused(media_ws, [*ARGS, "--to", str(target)], f"copy:{nth}", env={"MOBIUS_TEST_SLOW_COPY_MS": "5"})
        run.kill()
    _finish(mobius, media_ws, target)
    assert snapshot(target) == before == snapshot(source)
    assert not temps(target)
