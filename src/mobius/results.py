"""One result contract for every capability: checks with evidence, reports, and one JSON serializer.

A check says what was looked at and what was seen: its name, a verdict (pass, fail or
inconclusive; "no data" is inconclusive, never pass), the observed value and its unit, the
threshold it was held to, and where the value came from. A report is a list of checks.

The rule for failures: a function that *checks* returns a Report and never raises for a failed
check; the caller that must stop (a command, the orchestrator) calls `report.raise_if_failed()`,
which raises VerificationError (exit 2) naming each failed check. Errors that prevent checking at
all (a missing file, a bad argument) raise as before.

`to_jsonable` is the only serializer: `--json`, the logs, the record store and the HTTP API use it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from mobius.errors import VerificationError
from mobius.safety.stamps import utc_iso


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    SKIPPED = "skipped"  # not applicable or not configured; said so, never counted as a pass


@dataclass(frozen=True)
class Check:
    """One verdict with its evidence."""

    name: str
    verdict: Verdict
    observed: Any = None
    threshold: Any = None
    unit: str | None = None
    source: str = ""
    detail: str = ""
    time: str = field(default_factory=utc_iso)

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def failed(self) -> bool:
        return self.verdict is Verdict.FAIL

    def line(self) -> str:
        """One line for a person: verdict, name, what was seen against what was wanted."""
        parts = [f"{self.verdict.value:<12} {self.name}"]
        if self.observed is not None:
            unit = f" {self.unit}" if self.unit else ""
            parts.append(f"observed {self.observed}{unit}")
        if self.threshold is not None:
            parts.append(f"threshold {self.threshold}")
        if self.detail:
            parts.append(self.detail)
        return ": ".join(parts[:1]) + (" " + "; ".join(parts[1:]) if len(parts) > 1 else "")


def passed(name: str, observed: Any = None, **evidence: Any) -> Check:
    return Check(name, Verdict.PASS, observed, **evidence)


def failed(name: str, observed: Any = None, **evidence: Any) -> Check:
    return Check(name, Verdict.FAIL, observed, **evidence)


def inconclusive(name: str, detail: str, **evidence: Any) -> Check:
    return Check(name, Verdict.INCONCLUSIVE, detail=detail, **evidence)


def skipped(name: str, detail: str, **evidence: Any) -> Check:
    return Check(name, Verdict.SKIPPED, detail=detail, **evidence)


def at_least(name: str, observed: float | None, minimum: float, *, unit: str | None = None, source: str = "",
             detail: str = "") -> Check:
    """pass when observed >= minimum; inconclusive when there is no value (never a silent pass)."""
    if observed is None or (isinstance(observed, float) and math.isnan(observed)):
        return Check(name, Verdict.INCONCLUSIVE, None, f">= {minimum}", unit, source, detail or "no value")
    verdict = Verdict.PASS if observed >= minimum else Verdict.FAIL
    return Check(name, verdict, observed, f">= {minimum}", unit, source, detail)


def at_most(name: str, observed: float | None, maximum: float, *, unit: str | None = None, source: str = "",
            detail: str = "") -> Check:
    """pass when observed <= maximum; inconclusive when there is no value."""
    if observed is None or (isinstance(observed, float) and math.isnan(observed)):
        return Check(name, Verdict.INCONCLUSIVE, None, f"<= {maximum}", unit, source, detail or "no value")
    verdict = Verdict.PASS if observed <= maximum else Verdict.FAIL
    return Check(name, verdict, observed, f"<= {maximum}", unit, source, detail)


# checks of room rather than of correctness: a refusal for these alone is "not enough resources" (exit 5)
RESOURCE_CHECKS = frozenset({"disk.free", "free disk"})


@dataclass
class Report:
    """The checks one verification made; its verdict is the worst of theirs."""

    subject: str
    checks: list[Check] = field(default_factory=list)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def extend(self, checks: Iterable[Check]) -> Report:
        self.checks.extend(checks)
        return self

    @property
    def verdict(self) -> Verdict:
        counted = [c for c in self.checks if c.verdict is not Verdict.SKIPPED]
        if any(c.failed for c in counted):
            return Verdict.FAIL
        if not counted or any(c.verdict is Verdict.INCONCLUSIVE for c in counted):
            return Verdict.INCONCLUSIVE
        return Verdict.PASS

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.PASS

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.failed]

    def lines(self) -> list[str]:
        return [c.line() for c in self.checks]

    def short_of_resources(self) -> bool:
        """Every failure is a check of room (`RESOURCE_CHECKS`): a refusal says exit 5, not a failed check."""
        bad = self.failures()
        return bool(bad) and all(c.name in RESOURCE_CHECKS for c in bad)

    def raise_if_failed(self, *, hint: str | None = None, strict: bool = False) -> Report:
        """VerificationError (exit 2) naming each failed check; with strict, inconclusive fails too."""
        bad = [c for c in self.checks if c.failed or (strict and c.verdict is Verdict.INCONCLUSIVE)]
        if bad:
            names = ", ".join(c.name for c in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise VerificationError(f"{self.subject}: {len(bad)} check(s) failed: {names}", hint=hint,
                                    details=[c.line() for c in bad])
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "verdict": self.verdict.value, "ok": self.ok,
                "checks": [to_jsonable(c) for c in self.checks]}


def to_jsonable(value: Any) -> Any:
    """Plain JSON types from dataclasses, pydantic models, enums, paths, datetimes, sets and `to_dict` objects.

    A dataclass field is keyed by its name, or by `metadata={"json": KEY}` where the key is not a valid
    Python name (a field `old` serialized as "from")."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, PurePath):
        return str(Path(value).absolute()) if isinstance(value, Path) else str(value)
    if isinstance(value, dt.datetime):
        return utc_iso(value) if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date | dt.time | dt.timedelta):
        return value.total_seconds() if isinstance(value, dt.timedelta) else value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((to_jsonable(v) for v in value), key=str)
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    if hasattr(value, "model_dump"):
        return to_jsonable(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.metadata.get("json", f.name): to_jsonable(getattr(value, f.name))
                for f in dataclasses.fields(value) if not f.name.startswith("_")}
    return str(value)


def dumps(value: Any) -> str:
    """One JSON line."""
    return json.dumps(to_jsonable(value), ensure_ascii=False)
