"""GoldenVerdict keeps its own JSON (the CLI and the API read it) and gives the results contract's Report."""

from __future__ import annotations

from pathlib import Path

from mobius.golden.baseline import Thresholds
from mobius.golden.verdicts import GoldenCheck, GoldenVerdict
from mobius.results import Report, Verdict


def _verdict(*checks: GoldenCheck) -> GoldenVerdict:
    return GoldenVerdict("game", Path("/v.mp4"), Path("/g"), Thresholds(), list(checks))


def test_to_report_keeps_each_verdict() -> None:
    verdict = _verdict(GoldenCheck("frame.1", "frame", True, 0.99, 0.9, rule=">="),
                       GoldenCheck("audio.content", "audio", False, 4.0, 1.0, rule="<=", message="louder"),
                       GoldenCheck("audio.bands", "audio", True, None, None, skipped=True, message="no audio"))
    report = verdict.to_report()
    assert isinstance(report, Report) and report.subject == "golden check game"
    assert [c.verdict for c in report.checks] == [Verdict.PASS, Verdict.FAIL, Verdict.SKIPPED]
    assert report.verdict is Verdict.FAIL and not verdict.passed
    assert report.checks[1].threshold == "<= 1.0" and report.checks[1].detail == "louder"


def test_json_keys_unchanged() -> None:
    data = _verdict(GoldenCheck("frame.1", "frame", True, 0.99, 0.9, rule=">=")).to_dict()
    assert list(data) == ["game", "video", "golden", "passed", "thresholds", "failed", "skipped", "checks", "seconds"]
    assert list(data["checks"][0]) == ["name", "kind", "passed", "measured", "threshold", "rule", "expected",
                                       "deviation", "message", "skipped", "ranges", "files"]
