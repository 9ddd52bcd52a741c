"""`pipeline test` (the runbook's test-pipeline): every spec compiles, its assets exist and match,
a short proxy renders, and the proxy probes as the pipeline promises.

Every spec is tried and every problem collected, so one run names all that is wrong.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mobius.config import Workspace
from mobius.errors import MobiusError, VerificationError
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress
from mobius.render.spec_library import SpecLibrary, spec_library
from mobius.results import Report, failed, passed

PROXY_SIZE = (320, 180)
PROXY_FPS = 10
PROXY_SECONDS = 2.0


@dataclass
class GameCheck:
    game: str
    spec: Path
    shots: int = 0
    assets: int = 0
    problems: list[str] = field(default_factory=list)
    proxy: dict[str, object] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        return {"game": self.game, "spec": self.spec, "shots": self.shots, "assets": self.assets,
                "passed": self.passed, "problems": self.problems, "proxy": self.proxy}


@dataclass
class PipelineReport:
    games: list[GameCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.games) and all(g.passed for g in self.games)

    def failures(self) -> list[str]:
        return [f"{g.game}: {p}" for g in self.games for p in g.problems]

    def report(self) -> Report:
        """The same findings as a results.Report: one check per game (failed with each problem named)."""
        checks = [failed(f"pipeline.{g.game}", g.shots, unit="shots", source=str(g.spec), detail="; ".join(g.problems))
                  if g.problems else passed(f"pipeline.{g.game}", g.shots, unit="shots", source=str(g.spec),
                                            detail=f"{g.assets} assets") for g in self.games]
        return Report("pipeline test", checks)

    def raise_if_failed(self) -> PipelineReport:
        """VerificationError (exit 2) naming every problem, as `mobius pipeline test` exits; else self."""
        if not self.passed:
            failures = self.failures()
            raise VerificationError(f"pipeline test: {len(failures)} problem(s): {failures[0]}",
                                    hint="fix the specs or the library, then run `mobius pipeline test` again",
                                    details=failures)
        return self

    def to_dict(self) -> dict[str, object]:
        return {"passed": self.passed, "games": [g.to_dict() for g in self.games]}


def _probe_problems(info, seconds: float) -> list[str]:
    expected = {"codec": "h264", "width": PROXY_SIZE[0], "height": PROXY_SIZE[1], "pix_fmt": "yuv420p",
                "frame_rate": float(PROXY_FPS), "audio_codec": "aac", "sample_rate": 48000, "channels": 2}
    problems = [f"proxy {name} is {getattr(info, name)!r}, expected {value!r}"
                for name, value in expected.items() if getattr(info, name) != value]
    if abs(info.duration - seconds) > 0.2:
        problems.append(f"proxy duration is {info.duration:g} s, expected {seconds:g} s")
    return problems


def delivery_problems(video: Path, *, seconds: float | None = None) -> list[str]:
    """What keeps a full preview from the delivery format (H.264 yuv420p 960x540 30 fps, AAC stereo
    48 kHz, -16 LUFS +-0.5, true peak <= -1 dBTP); empty when it meets it."""
    from mobius.measure.decode import read_media
    from mobius.measure.loudness import measure

    sample = read_media(Path(video), [0.0])
    info = sample.container
    expected = {"codec": "h264", "width": 960, "height": 540, "pix_fmt": "yuv420p", "frame_rate": 30.0,
                "audio_codec": "aac", "sample_rate": 48000, "channels": 2}
    problems = [f"{video.name}: {name} is {getattr(info, name)!r}, expected {value!r}"
                for name, value in expected.items() if getattr(info, name) != value]
    if seconds is not None and abs(info.duration - seconds) > 0.1:
        problems.append(f"{video.name}: duration {info.duration:g} s, expected {seconds:g} s")
    if sample.audio is not None:
        stats = measure(sample.audio, sample.sample_rate)
        if abs(stats.integrated_lufs + 16.0) > 0.5:
            problems.append(f"{video.name}: integrated loudness {stats.integrated_lufs:.2f} LUFS, expected -16 +-0.5")
        if stats.true_peak_dbtp > -1.0:
            problems.append(f"{video.name}: true peak {stats.true_peak_dbtp:.2f} dBTP, above -1")
    return problems


def check_game(ws: Workspace, spec_file: Path, scratch: Path, library: SpecLibrary | None = None) -> GameCheck:
    """All checks of one spec against `library` (default: the workspace's local library); problems are
    collected, not raised."""
    from mobius.measure.decode import probe
    from mobius.render.preview import render_preview
    from mobius.render.shots import compile_shots, damaged_assets, missing_assets
    from mobius.render.spec import load_spec

    check = GameCheck(game=spec_file.stem, spec=spec_file)
    try:
        spec = load_spec(spec_file)
        if library is None or library.folder is None:
            library = SpecLibrary(ws.library_path, str(ws.library_path))
        folder = library.folder
        shots = compile_shots(spec, folder)
    except MobiusError as exc:
        check.problems.append(exc.message)
        return check
    check.shots = len(shots.shots)
    check.assets = len(shots.assets())
    check.problems += [f"asset missing: {library.shown(a.path)} (component {a.component_id!r})"
                       for a in missing_assets(shots)]
    check.problems += [f"asset changed: {library.shown(a.path)} (sha256 {actual[:12]}..., spec records "
                       f"{a.sha256[:12]}...)" for a, actual in damaged_assets(shots)]
    if check.problems:
        return check
    proxy_file = scratch / f"{spec.slug}-proxy.mp4"
    try:
        proxy_shots = compile_shots(spec, folder, duration=PROXY_SECONDS)
        render_preview(proxy_shots, proxy_file, color=spec.color, size=PROXY_SIZE, fps=PROXY_FPS)
        info = probe(proxy_file)
    except (MobiusError, OSError, ValueError) as exc:
        check.problems.append(f"proxy render failed: {getattr(exc, 'message', exc)}")
        return check
    check.proxy = info.to_dict()
    check.problems += _probe_problems(info, PROXY_SECONDS)
    return check


def pipeline_task(ws: Workspace, job: tuple[str, str, SpecLibrary]) -> GameCheck:
    """One executor item: every check of one spec, its proxy rendered into the run's scratch folder."""
    spec_file, scratch, library = job
    return check_game(ws, Path(spec_file), Path(scratch), library)


def pipeline_test(ws: Workspace, games: list[str] | None = None, *, executor=None,
                  progress: Progress | None = None) -> PipelineReport:
    """Run the pipeline checks over `games` (default: every spec in games/), one executor item per spec."""
    from mobius.executor import Item, run_items, using
    from mobius.render.spec import list_specs, spec_path
    from mobius.safety.atomic import TEMP_PREFIX

    progress = progress or NoProgress()
    log = get_logger()
    specs = [spec_path(ws.games, g) for g in games] if games else list_specs(ws.games)
    checks: dict[Path, GameCheck] = {}
    for spec_file in specs:
        if not spec_file.is_file():
            checks[spec_file] = GameCheck(spec_file.stem, spec_file, problems=[f"spec not found: {spec_file}"])
    present = [s for s in specs if s not in checks]
    ws.out.mkdir(parents=True, exist_ok=True)
    # in out/ (workers reach it) under a temp name the leftover sweep recognises if this run is killed
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-pipeline-", dir=ws.out) as tmp:
        if present:
            library = spec_library(ws, present, Path(tmp) / "library")  # s3://: only the assets the specs name
            items = [Item(str(s), (str(s), tmp, library)) for s in present]
            with using(ws, executor) as chosen:
                run = run_items(ws, "pipeline test", pipeline_task, items, executor=chosen,
                                reach=[ws.out, ws.games, *([library.folder] if library.folder else [])],
                                sweep=[Path(tmp)], progress=progress)
            for outcome in run.outcomes:
                spec_file = Path(outcome.key)
                checks[spec_file] = outcome.value if outcome.ok else GameCheck(
                    spec_file.stem, spec_file, problems=[f"check failed: {outcome.error}"])
    report = PipelineReport(games=[checks[s] for s in specs])
    for result in report.games:
        log.info("pipeline.game", game=result.game, passed=result.passed, problems=result.problems[:20])
    return report
