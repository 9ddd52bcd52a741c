"""Writing, replacing, backing up and restoring golden baselines."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import pytest

from .conftest import GAME, run_mobius

pytestmark = pytest.mark.slow


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_generate_writes_the_documented_layout(workspace: Path):
    video = workspace / "out" / GAME / "preview.mp4"
    proc = run_mobius("golden", "generate", "--game", GAME, "--in", str(video), "--frames", "1,2.5,29",
                      "-w", str(workspace), "--json")
    assert proc.returncode == 0, proc.stderr
    folder = workspace / "tests" / "golden" / GAME
    assert sorted(p.name for p in (folder / "frames").iterdir()) == ["frame_1s.png", "frame_2.5s.png",
                                                                     "frame_29s.png"]
    meta = json.loads((folder / "golden.json").read_text())
    assert meta["frames"] == [1.0, 2.5, 29.0] and meta["thresholds"]["ssim"] == 0.995
    assert meta["generator"].startswith("mobius ") and meta["created"].endswith("Z")
    container = json.loads((folder / "container.json").read_text())
    assert (container["codec"], container["width"], container["height"], container["pix_fmt"]) == \
           ("h264", 960, 540, "yuv420p")
    assert container["frame_rate"] == 30.0 and container["channels"] == 2 and container["sample_rate"] == 48000
    audio = json.loads((folder / "audio_stats.json").read_text())
    assert audio["integrated_lufs"] == pytest.approx(-16.0, abs=0.5) and audio["true_peak_dbtp"] <= -1.0
    assert set(audio) >= {"integrated_lufs", "loudness_range_lu", "true_peak_dbtp"}
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp or old folders left


def test_failed_generate_leaves_the_old_goldens_untouched(workspace: Path, tmp_path: Path):
    folder = workspace / "tests" / "golden" / GAME
    before = tree_digest(folder)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    proc = run_mobius("golden", "generate", "--game", GAME, "--in", str(broken), "-w", str(workspace))
    assert proc.returncode == 1, proc.stderr
    proc = run_mobius("golden", "generate", "--game", GAME, "--in", str(workspace / "out" / GAME / "preview.mp4"),
                      "--frames", "5,45", "-w", str(workspace))
    assert proc.returncode == 1 and "45 s" in proc.stderr
    assert tree_digest(folder) == before
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_regenerating_keeps_adjusted_thresholds_and_frames(workspace: Path):
    meta_file = workspace / "tests" / "golden" / GAME / "golden.json"
    meta = json.loads(meta_file.read_text())
    meta["thresholds"]["ssim"] = 0.99
    meta["frames"] = [3, 12]
    meta_file.write_text(json.dumps(meta))
    proc = run_mobius("golden", "generate", "--game", GAME, "--in", str(workspace / "out" / GAME / "preview.mp4"),
                      "-w", str(workspace))
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(meta_file.read_text())
    assert meta["thresholds"]["ssim"] == 0.99 and meta["frames"] == [3.0, 12.0]


def test_per_os_baseline_is_used_when_asked_and_survives_a_shared_regenerate(workspace: Path, perturbed: dict):
    os_name = platform.system().lower()
    video = workspace / "out" / GAME / "preview.mp4"
    proc = run_mobius("golden", "generate", "--game", GAME, "--in", str(perturbed["box"]), "--per-os",
                      "-w", str(workspace))
    assert proc.returncode == 0, proc.stderr
    per_os = workspace / "tests" / "golden" / GAME / os_name
    assert (per_os / "golden.json").is_file() and (per_os / "frames" / "frame_10s.png").is_file()
    # the per-OS baseline (from the box video) is used with the variable, the shared one without
    proc = run_mobius("golden", "check", "--game", GAME, "--in", str(perturbed["box"]), "-w", str(workspace),
                      "--json", env={"MOBIUS_GOLDEN_PER_OS": "1"})
    assert proc.returncode == 0 and json.loads(proc.stdout)["golden"] == str(per_os)
    proc = run_mobius("golden", "check", "--game", GAME, "--in", str(perturbed["box"]), "-w", str(workspace))
    assert proc.returncode == 2
    before = tree_digest(per_os)
    proc = run_mobius("golden", "generate", "--game", GAME, "--in", str(video), "-w", str(workspace))
    assert proc.returncode == 0, proc.stderr
    assert tree_digest(per_os) == before


def test_approve_refuses_a_render_that_fails_the_pipeline_test(workspace: Path):
    golden = workspace / "tests" / "golden"
    before = tree_digest(golden)
    (workspace / "uploads" / "sushi-go" / "cards" / "tempura.png").unlink()
    proc = run_mobius("golden", "approve", "sushi-go", "-w", str(workspace))
    assert proc.returncode == 2
    assert "refused" in proc.stderr and "tempura.png" in proc.stderr
    assert tree_digest(golden) == before


def _backup_available() -> bool:
    try:
        from mobius.backup import restore_archive, verify_archive, write_archive  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _backup_available(), reason="mobius.backup does not expose write/verify/restore_archive yet")
def test_backup_then_restore_brings_the_goldens_back(workspace: Path):
    golden = workspace / "tests" / "golden"
    before = tree_digest(golden)
    code_proc = run_mobius("golden", "backup", "-w", str(workspace), "--json")
    assert code_proc.returncode == 0, code_proc.stderr
    archive = Path(json.loads(code_proc.stdout)["archive"])
    assert archive.is_file() and Path(str(archive) + ".sha256").is_file()
    (golden / GAME / "golden.json").write_text("{}")
    proc = run_mobius("golden", "restore", str(archive), "-w", str(workspace), "--json")
    assert proc.returncode == 0, proc.stderr
    assert tree_digest(golden) == before
    assert Path(json.loads(proc.stdout)["previous_goldens_backup"]).is_file()


@pytest.mark.skipif(not _backup_available(), reason="mobius.backup does not expose write/verify/restore_archive yet")
def test_update_backs_up_renders_and_regenerates(workspace: Path):
    folder = workspace / "tests" / "golden" / GAME
    (folder / "golden.json").write_text(json.dumps({**json.loads((folder / "golden.json").read_text()),
                                                    "created": "2000-01-01T00:00:00Z"}))
    proc = run_mobius("golden", "update", GAME, "-w", str(workspace), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert Path(result["backup"]).is_file()
    assert json.loads((folder / "golden.json").read_text())["created"] != "2000-01-01T00:00:00Z"
    proc = run_mobius("golden", "check", "--game", GAME, "--in", str(workspace / "out" / GAME / "preview.mp4"),
                      "-w", str(workspace))
    assert proc.returncode == 0, proc.stdout


def test_an_interrupted_swap_is_repaired_by_the_next_command(workspace: Path):
    golden = workspace / "tests" / "golden"
    before = tree_digest(golden / GAME)
    (golden / GAME).rename(golden / f".{GAME}.old-dead1234")  # killed between the two renames
    (golden / ".mobius-tmp-golden-sushi-go-dead1234").mkdir()  # and its half-written replacement
    proc = run_mobius("golden", "check", "--game", GAME, "--in", str(workspace / "out" / GAME / "preview.mp4"),
                      "-w", str(workspace))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert tree_digest(golden / GAME) == before
    assert not [p.name for p in golden.iterdir() if p.name.startswith(".")]


def test_per_os_on_without_an_os_baseline_is_bad_input(workspace: Path):
    proc = run_mobius("golden", "check", "--game", GAME, "--in", str(workspace / "out" / GAME / "preview.mp4"),
                      "--per-os", "-w", str(workspace))
    assert proc.returncode == 1 and platform.system().lower() in proc.stderr


def test_delivery_check_names_what_a_render_misses(approved: Path, perturbed: dict):
    from mobius.render.pipeline import delivery_problems

    assert delivery_problems(approved / "out" / GAME / "preview.mp4", seconds=30.0) == []
    scaled = delivery_problems(perturbed["scaled"], seconds=30.0)
    assert any("width is 1280" in p for p in scaled) and any("height is 720" in p for p in scaled)
    assert any("integrated loudness" in p for p in delivery_problems(perturbed["gain"]))


def test_restore_latest_takes_the_newest_golden_backup_and_carries_the_signatures(workspace: Path):
    folder = workspace / "tests" / "golden"
    proc = run_mobius("golden", "restore", "latest", "-w", str(workspace))
    assert proc.returncode == 1 and "no golden backups" in proc.stderr
    before = tree_digest(folder)
    assert "sushi-go/signatures.npz" in before
    assert run_mobius("golden", "backup", "-w", str(workspace)).returncode == 0
    (folder / GAME / "signatures.npz").unlink()
    proc = run_mobius("golden", "restore", "latest", "-w", str(workspace), "--json")
    assert proc.returncode == 0, proc.stderr
    assert tree_digest(folder) == before
