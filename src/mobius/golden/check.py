"""Holding a video to its golden baseline: one verdict per check, with the measured value and the limit.

Checks: `frame.<t>s` (mean luma SSIM >= ssim), `audio.integrated_loudness` (|delta| <= lufs_tol),
`audio.true_peak` (|delta| <= tp_tol), and `container.<field>` for each fact in container.json
(equal; duration within duration_tol, frame rate within fps_tol). A limit exactly met passes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mobius.config import Workspace
from mobius.golden.baseline import Golden, Thresholds, debug_folder, frame_file, load_golden
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress


@dataclass
class Check:
    """One verdict: what was measured, the golden value, the deviation and the limit it is held to."""

    name: str
    kind: str  # frame | audio | container
    passed: bool
    measured: object
    threshold: object
    expected: object = None
    deviation: float | None = None
    rule: str = ""  # how measured/deviation meets threshold: ">=", "<=", "=="
    message: str = ""
    files: dict[str, Path] = field(default_factory=dict)

    def line(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        parts = [f"{verdict:4} {self.name:28} measured {_fmt(self.measured)}"]
        if self.deviation is not None:
            parts.append(f"golden {_fmt(self.expected)}, deviation {_fmt(self.deviation)} {self.rule} {self.threshold}")
        elif self.rule:
            parts.append(f"{self.rule} {_fmt(self.threshold)}")
        line = "; ".join(parts)
        return f"{line}  ({self.message})" if self.message and not self.passed else line

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "passed": self.passed, "measured": self.measured,
                "threshold": self.threshold, "rule": self.rule, "expected": self.expected,
                "deviation": self.deviation, "message": self.message,
                "files": {k: str(v) for k, v in self.files.items()}}


def _fmt(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@dataclass
class CheckReport:
    game: str
    video: Path
    golden: Path
    thresholds: Thresholds
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    planes: dict[float, object] = field(default_factory=dict, repr=False)  # current luma planes, for reports

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def lines(self) -> list[str]:
        head = f"golden check {self.game}: {self.video}"
        tail = (f"{self.game}: all {len(self.checks)} checks passed" if self.passed
                else f"{self.game}: {len(self.failures)} of {len(self.checks)} checks failed: "
                     + ", ".join(c.name for c in self.failures))
        return [head, *("  " + c.line() for c in self.checks), tail]

    def to_dict(self) -> dict[str, object]:
        return {"game": self.game, "video": self.video, "golden": self.golden, "passed": self.passed,
                "thresholds": self.thresholds.to_dict(), "failed": [c.name for c in self.failures],
                "checks": [c.to_dict() for c in self.checks], "seconds": round(self.seconds, 3)}


def _frame_checks(golden: Golden, frames: dict, limits: Thresholds, debug: Path | None) -> list[Check]:
    from mobius.golden.ssim import ssim_and_map

    checks = []
    for t in golden.frames:
        name = f"frame.{t:g}s"
        expected = golden.plane(t)
        current = frames[t]
        files = {"golden": golden.frame_path(t)}
        similarity = None
        if expected.shape != current.shape:
            check = Check(name, "frame", False, 0.0, limits.ssim, rule=">=", message=(
                f"frame is {current.shape[1]}x{current.shape[0]}, golden {expected.shape[1]}x{expected.shape[0]}"))
        else:
            score, similarity = ssim_and_map(expected, current)
            passed = score >= limits.ssim
            check = Check(name, "frame", passed, score, limits.ssim, rule=">=",
                          message="" if passed else f"SSIM {score:.4f} < {limits.ssim}")
        if not check.passed and debug is not None:
            from mobius.golden.report import write_debug_images

            files.update(write_debug_images(debug, frame_file(t), expected, current, similarity))
        check.files = files
        checks.append(check)
    return checks


def _audio_checks(golden: Golden, audio, sample_rate: int, limits: Thresholds) -> list[Check]:
    from mobius.golden.loudness import measure

    if audio is None:
        return [Check(f"audio.{n}", "audio", False, None, t, rule="<=", message="the video has no audio stream")
                for n, t in (("integrated_loudness", limits.lufs_tol), ("true_peak", limits.tp_tol))]
    stats = measure(audio, sample_rate)
    checks = []
    for name, key, measured, tol, unit in (
        ("audio.integrated_loudness", "integrated_lufs", stats.integrated_lufs, limits.lufs_tol, "LU"),
        ("audio.true_peak", "true_peak_dbtp", stats.true_peak_dbtp, limits.tp_tol, "dB"),
    ):
        expected = float(golden.audio.get(key, float("nan")))
        deviation = round(abs(measured - expected), 6)
        passed = deviation <= tol
        checks.append(Check(name, "audio", passed, measured, tol, expected, deviation, "<=",
                            message="" if passed else f"off by {deviation:.2f} {unit}, more than {tol} {unit}"))
    checks.append(Check("audio.loudness_range", "audio", True, stats.loudness_range_lu, None,
                        golden.audio.get("loudness_range_lu"), message="informational, not a verdict"))
    return checks


def _container_checks(golden: Golden, info, limits: Thresholds) -> list[Check]:
    current = info.to_dict()
    checks = []
    for name, expected in golden.container.items():
        measured = current.get(name)
        tolerance = {"duration": limits.duration_tol, "frame_rate": limits.fps_tol}.get(name)
        if tolerance is not None and isinstance(measured, int | float) and isinstance(expected, int | float):
            deviation = round(abs(float(measured) - float(expected)), 6)
            check = Check(f"container.{name}", "container", deviation <= tolerance, measured, tolerance, expected,
                          deviation, "<=")
        else:
            check = Check(f"container.{name}", "container", measured == expected, measured, expected, expected,
                          rule="==")
        if not check.passed:
            check.message = f"{measured} differs from golden {expected}"
        checks.append(check)
    return checks


def check_video(ws: Workspace, slug: str, video: Path, *, overrides: dict[str, float | None] | None = None,
                per_os: bool = False, debug: bool = True, progress: Progress | None = None) -> CheckReport:
    """Compare `video` with the baseline of `slug`; never raises for a failed check (see .passed).

    Raises InputError (exit 1) for a missing video or baseline, or a golden frame time beyond the
    video's duration; EnvironmentProblem (exit 3) when PyAV is missing.
    """
    import time

    from mobius.golden.media import read_media

    started = time.monotonic()
    progress = progress or NoProgress()
    golden = load_golden(ws, slug, per_os=per_os)
    limits = golden.thresholds.merged(overrides)
    progress.start(f"golden check {slug}", total=3, unit="steps")
    sample = read_media(Path(video), golden.frames)
    progress.advance()
    debug_dir = debug_folder(ws, slug) if debug else None
    if debug_dir is not None and debug_dir.exists():
        shutil.rmtree(debug_dir)
    report = CheckReport(slug, Path(video).resolve(), golden.folder, limits, planes=sample.frames)
    report.checks += _frame_checks(golden, sample.frames, limits, debug_dir)
    progress.advance()
    report.checks += _audio_checks(golden, sample.audio, sample.sample_rate, limits)
    report.checks += _container_checks(golden, sample.container, limits)
    progress.advance()
    progress.finish()
    report.seconds = time.monotonic() - started
    get_logger().info("golden.checked", game=slug, passed=report.passed, failed=[c.name for c in report.failures])
    return report
