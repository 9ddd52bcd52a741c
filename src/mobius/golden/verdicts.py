"""What a golden check yields: one verdict per check, with the measured value and the limit, and the
timelines (a value per frame or per audio window) the HTML report plots.

Why golden keeps its own classes (`GoldenCheck`, `GoldenVerdict`) instead of `mobius.results.Check`
and `Report`: `mobius golden check --json`, the JUnit/HTML reports and the HTTP API (`api/reads.py`:
game, passed, failed, checks, failed_checks) rely on keys `results.Check` does not have (kind,
expected, deviation, rule, failing time ranges, debug files, the thresholds, seconds) and on
`passed` booleans rather than a verdict string. Changing them would break those readers, so the
JSON stays as it is; the names differ from the contract's so no module has a second `Check` or
`Report`, and `GoldenCheck.to_check()` / `GoldenVerdict.to_report()` give the contract's form to
the runner and the record store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mobius.golden.baseline import Thresholds
from mobius.results import Check, Report, Verdict


@dataclass
class GoldenCheck:
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
    ranges: list[dict[str, float]] = field(default_factory=list)  # failing time ranges (start, end, worst_at, worst)
    skipped: bool = False  # not run (the golden lacks what it needs); passed stays True, the message says why

    def line(self) -> str:
        if self.skipped:
            return f"skip {self.name:28} {self.message}"
        verdict = "pass" if self.passed else "FAIL"
        parts = [f"{verdict:4} {self.name:28} measured {_fmt(self.measured)}"]
        if self.deviation is not None:
            parts.append(f"golden {_fmt(self.expected)}, deviation {_fmt(self.deviation)} {self.rule} {self.threshold}")
        elif self.rule:
            parts.append(f"{self.rule} {_fmt(self.threshold)}")
        line = "; ".join(parts)
        return f"{line}  ({self.message})" if self.message and not self.passed else line

    def to_check(self) -> Check:
        """This verdict as the contract's Check (skipped stays skipped, never counted as a pass)."""
        verdict = Verdict.SKIPPED if self.skipped else Verdict.PASS if self.passed else Verdict.FAIL
        threshold = f"{self.rule} {self.threshold}" if self.rule and self.threshold is not None else self.threshold
        return Check(self.name, verdict, self.measured, threshold, source=f"golden {self.kind}",
                     detail=self.message)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "passed": self.passed, "measured": self.measured,
                "threshold": self.threshold, "rule": self.rule, "expected": self.expected,
                "deviation": self.deviation, "message": self.message, "skipped": self.skipped,
                "ranges": self.ranges, "files": {k: str(v) for k, v in self.files.items()}}


def _fmt(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@dataclass
class GoldenVerdict:
    """Every check of one video against its goldens; `passed` when none failed (skipped ones do not)."""

    game: str
    video: Path
    golden: Path
    thresholds: Thresholds
    checks: list[GoldenCheck] = field(default_factory=list)
    seconds: float = 0.0
    planes: dict[float, object] = field(default_factory=dict, repr=False)  # current luma planes, for reports
    timelines: list[Timeline] = field(default_factory=list, repr=False)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[GoldenCheck]:
        return [c for c in self.checks if not c.passed]

    @property
    def skipped(self) -> list[GoldenCheck]:
        return [c for c in self.checks if c.skipped]

    def lines(self) -> list[str]:
        head = f"golden check {self.game}: {self.video}"
        run = len(self.checks) - len(self.skipped)
        tail = (f"{self.game}: all {run} checks passed" if self.passed
                else f"{self.game}: {len(self.failures)} of {run} checks failed: "
                     + ", ".join(c.name for c in self.failures))
        if self.skipped:
            tail += f" ({len(self.skipped)} not run: {', '.join(c.name for c in self.skipped)})"
        return [head, *("  " + c.line() for c in self.checks), tail]

    def to_report(self) -> Report:
        """The contract's Report of these checks, subject `golden check <game>`."""
        return Report(f"golden check {self.game}", [c.to_check() for c in self.checks])

    def to_dict(self) -> dict[str, object]:
        return {"game": self.game, "video": self.video, "golden": self.golden, "passed": self.passed,
                "thresholds": self.thresholds.to_dict(), "failed": [c.name for c in self.failures],
                "skipped": [c.name for c in self.skipped],
                "checks": [c.to_dict() for c in self.checks], "seconds": round(self.seconds, 3)}


@dataclass
class Timeline:
    """One value per frame or per audio window along the video, its limit and the failing ranges."""

    name: str  # the check it belongs to
    label: str
    unit: str
    times: list[float]
    values: list[float]
    limit: float
    ranges: list[dict[str, float]] = field(default_factory=list)
