"""`mobius golden check` / `check-all` against the approved samples and their perturbations."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .conftest import GAME, run_mobius

pytestmark = pytest.mark.slow


def check(ws: Path, video: Path, *extra: str, game: str = GAME) -> tuple[int, dict]:
    proc = run_mobius("golden", "check", "--game", game, "--in", str(video), "-w", str(ws), "--json", *extra)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, (proc.stdout, proc.stderr)
    return proc.returncode, json.loads(lines[0])


def junit_counts(path: Path) -> tuple[int, int, list[str]]:
    root = ET.parse(path).getroot()
    failed = [case.get("name") for case in root.iter("testcase") if case.find("failure") is not None]
    assert int(root.get("failures")) == len(failed)
    assert sum(int(s.get("failures")) for s in root.iter("testsuite")) == len(failed)
    return int(root.get("tests")), len(failed), failed


@pytest.mark.parametrize("game", ["sushi-go", "love-letter", "hanamikoji"])
def test_approved_render_passes_every_check(approved: Path, tmp_path: Path, game: str):
    code, result = check(approved, approved / "out" / game / "preview.mp4", "--junit", str(tmp_path / "j.xml"),
                         game=game)
    assert code == 0 and result["passed"] and result["failed"] == []
    frames = [c for c in result["checks"] if c["kind"] == "frame"]
    assert [c["name"] for c in frames] == ["frame.5s", "frame.10s", "frame.20s"]
    assert all(c["measured"] == 1.0 for c in frames)  # the identical decode scores exactly 1
    assert junit_counts(tmp_path / "j.xml")[:2] == (len(result["checks"]), 0)


def test_box_between_9_and_11_seconds_fails_the_10s_frame_and_the_frames_from_9_to_11(workspace: Path,
                                                                                       perturbed: dict, tmp_path: Path):
    junit, html = tmp_path / "box.xml", tmp_path / "box.html"
    code, result = check(workspace, perturbed["box"], "--junit", str(junit), "--html", str(html))
    assert code == 2 and not result["ok"]
    assert result["failed"] == ["frame.10s", "frames.content"]
    by_name = {c["name"]: c for c in result["checks"]}
    assert [(r["start"], r["end"]) for r in by_name["frames.content"]["ranges"]] == [(9.0, 11.0)]
    assert by_name["frame.5s"]["measured"] == 1.0 and by_name["frame.20s"]["measured"] == 1.0
    assert 0.9 < by_name["frame.10s"]["measured"] < 0.995
    debug = workspace / "tests" / "golden" / GAME / "debug"
    assert (debug / "frame_10s_diff.png").is_file() and not (debug / "frame_5s_diff.png").exists()
    tests, failures, failed = junit_counts(junit)
    assert (tests, failures, failed) == (len(result["checks"]), 2, ["frame.10s", "frames.content"])
    page = html.read_text()
    assert page.count("<img") >= 7 and "frame.10s" in page and "FAIL" in page


def test_audio_two_db_louder_fails_loudness_and_nothing_visual(workspace: Path, perturbed: dict):
    code, result = check(workspace, perturbed["gain"])
    assert code == 2
    assert "audio.integrated_loudness" in result["failed"]
    assert not [name for name in result["failed"] if name.startswith(("frame.", "container."))]
    loudness = next(c for c in result["checks"] if c["name"] == "audio.integrated_loudness")
    assert loudness["deviation"] == pytest.approx(2.0, abs=0.1)


def test_video_scaled_to_720p_fails_the_container_check(workspace: Path, perturbed: dict):
    code, result = check(workspace, perturbed["scaled"])
    assert code == 2
    assert {"container.width", "container.height"} <= set(result["failed"])
    assert not [name for name in result["failed"] if name.startswith("audio.")]


def test_golden_frame_time_beyond_the_duration_is_bad_input(workspace: Path):
    meta_file = workspace / "tests" / "golden" / GAME / "golden.json"
    meta = json.loads(meta_file.read_text())
    meta["frames"] = [5, 10, 40]  # as if approved from a 45 s render
    meta_file.write_text(json.dumps(meta))
    frames = meta_file.parent / "frames"
    (frames / "frame_40s.png").write_bytes((frames / "frame_20s.png").read_bytes())
    proc = run_mobius("golden", "check", "--game", GAME, "--in", str(workspace / "out" / GAME / "preview.mp4"),
                      "-w", str(workspace))
    assert proc.returncode == 1
    assert "40 s" in proc.stderr and "duration" in proc.stderr and "Traceback" not in proc.stderr


def test_threshold_exactly_met_passes(workspace: Path, perturbed: dict):
    _, first = check(workspace, perturbed["box"])
    measured = next(c["measured"] for c in first["checks"] if c["name"] == "frame.10s")
    worst = next(c["measured"] for c in first["checks"] if c["name"] == "frames.content")
    code, again = check(workspace, perturbed["box"], "--ssim", repr(measured), "--frame-diff", repr(worst))
    assert code == 0, again["failed"]
    _, loud = check(workspace, perturbed["gain"])
    deviations = {c["name"]: c["deviation"] for c in loud["checks"] if c["kind"] == "audio"}
    code, again = check(workspace, perturbed["gain"], "--lufs-tol", repr(deviations["audio.integrated_loudness"]),
                        "--tp-tol", repr(deviations["audio.true_peak"]))
    assert code == 0, again["failed"]


def test_command_line_threshold_overrides_golden_json(workspace: Path, perturbed: dict):
    meta_file = workspace / "tests" / "golden" / GAME / "golden.json"
    meta = json.loads(meta_file.read_text())
    meta["thresholds"]["ssim"] = 0.9
    meta["thresholds"]["frame_diff"] = 200
    meta_file.write_text(json.dumps(meta))
    code, result = check(workspace, perturbed["box"])
    assert code == 0 and result["thresholds"]["ssim"] == 0.9 and result["thresholds"]["frame_diff"] == 200
    code, result = check(workspace, perturbed["box"], "--ssim", "0.995")
    assert code == 2 and result["failed"] == ["frame.10s"]


def test_check_all_gives_one_summary_and_one_junit(workspace: Path, perturbed: dict, tmp_path: Path):
    junit = tmp_path / "all.xml"
    proc = run_mobius("golden", "check-all", "-w", str(workspace), "--junit", str(junit))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tests, failures, _ = junit_counts(junit)
    assert failures == 0 and tests == 3 * 22  # 16 checks + the 6 along the timeline, per game
    assert len(ET.parse(junit).getroot().findall("testsuite")) == 3
    (workspace / "out" / GAME / "preview.mp4").write_bytes(perturbed["box"].read_bytes())
    proc = run_mobius("golden", "check-all", "-w", str(workspace), "--junit", str(junit))
    assert proc.returncode == 2
    assert junit_counts(junit)[1:] == (2, ["frame.10s", "frames.content"])
    assert "sushi-go frame.10s" in proc.stderr and "sushi-go frames.content" in proc.stderr


def test_check_all_is_recorded_where_the_service_reads_golden_results(workspace: Path, perturbed: dict):
    from mobius.api.reads import golden_results
    from mobius.config import load_workspace

    proc = run_mobius("golden", "check-all", "-w", str(workspace))
    assert proc.returncode == 0, proc.stderr
    (workspace / "out" / GAME / "preview.mp4").write_bytes(perturbed["box"].read_bytes())
    proc = run_mobius("golden", "check", "--game", GAME, "--in", str(workspace / "out" / GAME / "preview.mp4"),
                      "-w", str(workspace))
    assert proc.returncode == 2
    history = json.loads(run_mobius("history", "--type", "golden", "--json", "-w", str(workspace)).stdout)
    kinds = [(op["type"], op["status"]) for op in history["operations"]]
    assert kinds[:2] == [("golden.check", "failed"), ("golden.check-all", "completed")]
    results = {r.game: r for r in golden_results(load_workspace(workspace))}
    assert results[GAME].verdict == "fail" and results[GAME].failed_checks == ["frame.10s", "frames.content"]
    assert {g: r.verdict for g, r in results.items() if g != GAME} == {"love-letter": "pass", "hanamikoji": "pass"}


def test_missing_video_missing_goldens_and_unknown_game_are_bad_input(workspace: Path, tmp_path: Path):
    video = workspace / "out" / GAME / "preview.mp4"
    proc = run_mobius("golden", "check", "--game", GAME, "--in", str(tmp_path / "nope.mp4"), "-w", str(workspace))
    assert proc.returncode == 1 and "video not found" in proc.stderr
    proc = run_mobius("golden", "check", "--game", "monopoly", "--in", str(video), "-w", str(workspace))
    assert proc.returncode == 1 and "no goldens for monopoly" in proc.stderr


def test_missing_media_libraries_exit_3(workspace: Path, tmp_path: Path):
    blocker = tmp_path / "blocker" / "av"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('PyAV hidden by the test')\n")
    proc = run_mobius("golden", "check", "--game", GAME, "--in", str(workspace / "out" / GAME / "preview.mp4"),
                      "-w", str(workspace), env={"PYTHONPATH": str(blocker.parent)})
    assert proc.returncode == 3, proc.stderr
    assert "media libraries are missing" in proc.stderr


def remux(source: Path, target: Path) -> Path:
    """The same coded streams in a new container (another title, so other container bytes)."""
    import av

    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        dst.metadata["title"] = "remuxed"
        chosen = [src.streams.video[0], src.streams.audio[0]]
        streams = {s.index: dst.add_stream_from_template(s) for s in chosen}
        for packet in src.demux(*chosen):
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    return target


def test_streams_identical_to_the_goldens_source_are_judged_as_a_full_decode_judges_them(workspace: Path,
                                                                                         perturbed: dict,
                                                                                         tmp_path: Path):
    """The approved preview (and a remux of it) carries the golden's source streams: the check takes the
    golden's own measurements instead of decoding. Without the stored digests it decodes everything; both
    must give the same checks, verdicts and values. The box video shares only the soundtrack."""
    from mobius.config import load_workspace
    from mobius.golden import check_video
    from mobius.measure.decode import stream_digests

    source = workspace / "out" / GAME / "preview.mp4"
    remuxed = remux(source, tmp_path / "remuxed.mp4")
    assert remuxed.read_bytes() != source.read_bytes()
    meta_path = workspace / "tests" / "golden" / GAME / "golden.json"
    meta = json.loads(meta_path.read_text())
    assert meta["streams"] == stream_digests(source) == stream_digests(remuxed)
    box = stream_digests(perturbed["box"])
    assert box["audio"] == meta["streams"]["audio"] and box["video"] != meta["streams"]["video"]

    def judged(video: Path) -> list[tuple]:
        report = check_video(load_workspace(workspace), GAME, video, debug=False)
        return [(c.name, c.passed, c.skipped, round(c.measured, 4) if isinstance(c.measured, float) else c.measured)
                for c in report.checks]

    quick = {name: judged(video) for name, video in (("source", source), ("remux", remuxed),
                                                     ("box", perturbed["box"]))}
    del meta["streams"]
    meta_path.write_text(json.dumps(meta))
    full = {name: judged(video) for name, video in (("source", source), ("remux", remuxed),
                                                    ("box", perturbed["box"]))}
    assert quick == full
    assert all(passed for _, passed, _, _ in quick["source"])
    assert [name for name, passed, _, _ in quick["box"] if not passed] == ["frame.10s", "frames.content"]
