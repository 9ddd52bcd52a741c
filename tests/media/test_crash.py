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
        assert out["resumed"]  # the temps were removed by the command's start (test_leftovers.py)


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


def _many_small_files(library: Path, count: int) -> None:
    rng = __import__("random").Random(3)
    for i in range(count):
        folder = library / f"cards {i % 3}"
        folder.mkdir(exist_ok=True)
        (folder / f"card {i:04d}.webp").write_bytes(rng.randbytes(rng.randint(1024, 4096)))


@pytest.mark.parametrize(("point", "batch"), [("publish:150", "2000"), ("verify:200", "2000"),
                                              ("copy:250", "2000"), ("commit:2", "100")])
def test_killed_inside_a_batch_resumes_to_identical_trees(mobius, media_ws: Path, tmp_path: Path, point: str,
                                                          batch: str):
    """Hundreds of small files in one batch: killed after some renames (or reads, or writes) of the batch and
    before its journal commit, the next run removes the temps, copies the rest again and ends identical."""
    source = media_ws / "uploads"
    _many_small_files(source, 320)
    before = snapshot(source)
    target = tmp_path / "new"
    run = Paused(media_ws, [*ARGS, "--to", str(target)], point, env={"MOBIUS_MEDIA_BATCH_FILES": batch})
    run.kill()
    if point.startswith("publish"):
        published = [p for p in target.rglob("card *.webp") if not p.name.startswith(".mobius-tmp-")]
        assert 0 < len(published) < 320 and temps(target), "killed halfway through publishing one batch"
    out = _finish(mobius, media_ws, target)
    assert out["resumed"] and not temps(target)
    assert snapshot(target) == before == snapshot(source)
