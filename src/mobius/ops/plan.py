"""A migration plan: a YAML file validated into typed settings, with errors that name the line.

Every problem is one line `PLAN:LINE: what is wrong` (InputError, exit 1): a bad field, a
missing file, an unknown step, a step parameter of the wrong type or unknown, a window that is
invalid or already over, YAML a plan may not use (an alias, a key given twice, deep nesting), a
file that is not UTF-8.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mobius.errors import InputError
from mobius.ops.steps import find_step, known_steps
from mobius.results import to_jsonable

VALIDATIONS = ("file_counts", "checksums", "db_check", "golden_check_all", "pipeline_test")
PROBES = ("library_listing", "pipeline_test", "golden_check", "service_ready")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def seconds(value: Any) -> float:
    """'15m', '90s', '2h', 30 -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration (e.g. 90s, 15m, 2h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def ratio(value: Any) -> float:
    """'10%' -> 0.10, 0.1 -> 0.1, '2x' -> 2.0."""
    text = str(value).strip()
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100
        if text.endswith("x"):
            return float(text[:-1])
        return float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a percentage or ratio (e.g. 10%, 2x)") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Window(_Strict):
    """Daily 'HH:MM' times (end before start crosses midnight) or full ISO date-times (one occasion)."""

    start: str
    end: str
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        value = str(value)
        if re.fullmatch(r"\d{1,2}:\d{2}", value):
            hours, minutes = map(int, value.split(":"))
            if hours > 23 or minutes > 59:
                raise ValueError(f"{value!r} is not a time of day")
            return value
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is neither HH:MM nor an ISO date-time") from None
        return value

    @property
    def daily(self) -> bool:
        return ":" in self.start and "T" not in self.start and "-" not in self.start

    def bounds(self, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
        """The current or next occurrence of the window (aware datetimes)."""
        tz = zoneinfo.ZoneInfo(self.timezone)
        now = (now or dt.datetime.now(dt.UTC)).astimezone(tz)
        if not self.daily:
            start, end = (dt.datetime.fromisoformat(v) for v in (self.start, self.end))
            start = start if start.tzinfo else start.replace(tzinfo=tz)
            return start, (end if end.tzinfo else end.replace(tzinfo=tz))
        sh, sm = map(int, self.start.split(":"))
        eh, em = map(int, self.end.split(":"))
        for day in (now.date() - dt.timedelta(days=1), now.date()):
            start = dt.datetime.combine(day, dt.time(sh, sm), tz)
            end = dt.datetime.combine(day, dt.time(eh, em), tz)
            if end <= start:
                end += dt.timedelta(days=1)
            if now < end:
                return start, end
        start = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(sh, sm), tz)
        return start, start + (end - dt.datetime.combine(now.date(), dt.time(sh, sm), tz))

    @model_validator(mode="after")
    def _order(self) -> Window:
        if not self.daily:
            start, end = self.bounds()
            if end <= start:
                raise ValueError(f"the window ends ({self.end}) before it starts ({self.start})")
            if end < dt.datetime.now(dt.UTC):
                raise ValueError(f"the window ended in the past ({self.end})")
        return self


class ErrorRateRollback(_Strict):
    above: float = 0.10
    for_s: float = Field(300.0, alias="for")

    _a = field_validator("above", mode="before")(lambda cls, v: ratio(v))
    _f = field_validator("for_s", mode="before")(lambda cls, v: seconds(v))


class Monitors(_Strict):
    """The runbook's thresholds are the defaults."""

    disk_free_min: float = 0.10
    error_rate_alert: float = 0.05
    error_rate_rollback: ErrorRateRollback = Field(default_factory=ErrorRateRollback)
    duration_escalate: float = 2.0
    performance_degradation_rollback: float = 0.50
    sample_every: float = 0.5  # seconds between samples

    _r = field_validator("disk_free_min", "error_rate_alert", "duration_escalate",
                         "performance_degradation_rollback", mode="before")(lambda cls, v: ratio(v))
    _s = field_validator("sample_every", mode="before")(lambda cls, v: seconds(v))


class Plan(_Strict):
    name: str = Field(min_length=1)
    type: Literal["golden", "media", "database", "environment", "combined"]
    risk: Literal["low", "medium", "high"] = "medium"
    window: Window | None = None
    estimate: float | None = None
    steps: list[dict[str, dict[str, Any]]] = Field(min_length=1)
    validate_: list[str] = Field(default_factory=list, alias="validate")
    probes: list[str] | None = None  # default: the probes that fit the steps (probe_names)
    probe_samples: int = Field(3, ge=1, le=50)
    monitors: Monitors = Field(default_factory=Monitors)
    oncall: str | None = None
    approver: str | None = None
    backup_max_age: float | None = None  # default: the setting MOBIUS_BACKUP_MAX_AGE_HOURS
    notice_lead: float | None = None  # default: the setting MOBIUS_NOTICE_LEAD_HOURS

    _e = field_validator("estimate", "backup_max_age", "notice_lead", mode="before")(
        lambda cls, v: None if v is None else seconds(v))

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        out = []
        for entry in value:
            if isinstance(entry, str):
                entry = {entry: {}}
            if not isinstance(entry, dict) or len(entry) != 1:
                raise ValueError("each step is one `name: {parameters}` entry")
            ((name, params),) = entry.items()
            out.append({name: params or {}})
        return out

    @field_validator("validate_")
    @classmethod
    def _validations(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in VALIDATIONS]
        if unknown:
            raise ValueError(f"unknown validation {unknown[0]!r} (known: {', '.join(VALIDATIONS)})")
        return value

    @field_validator("probes")
    @classmethod
    def _probes(cls, value: list[str] | None) -> list[str] | None:
        unknown = [v for v in value or [] if v not in PROBES]
        if unknown:
            raise ValueError(f"unknown probe {unknown[0]!r} (known: {', '.join(PROBES)})")
        return value

    def step_list(self) -> list[tuple[str, dict[str, Any]]]:
        return [next(iter(entry.items())) for entry in self.steps]

    def probe_names(self) -> list[str]:
        """The plan's `probes`, or else those that measure what its steps change (each step's `probes`;
        every probe for a step that does not say): a plan moving files is not timed by renders."""
        if self.probes is not None:
            return self.probes
        wanted = {probe for name, _ in self.step_list() for probe in getattr(find_step(name), "probes", PROBES)}
        return [probe for probe in PROBES if probe in wanted]


def _step_problem(name: str, exc: ValidationError) -> tuple[tuple[Any, ...], str]:
    """The location (below the step's name) and one phrase for the first problem in a step's parameters."""
    error = exc.errors()[0]
    loc = tuple(error["loc"])
    key = ".".join(str(p) for p in loc)
    if error["type"] == "extra_forbidden":
        return loc, f"{name}: unknown parameter {key!r} (known: {_known_params(name) or 'none'})"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return loc, f"{name} `{key}` is required"
    if error["type"] == "value_error":  # our own validator: its message names the value
        return loc, f"{name} `{key}`: {message}"
    return loc, f"{name} `{key}`: {message} (got {json.dumps(to_jsonable(error['input']))})"


def _known_params(name: str) -> str:
    params = getattr(find_step(name), "Params", None)  # a step's StepParams model, when it declares one
    return ", ".join(f.alias or n for n, f in params.model_fields.items()) if params is not None else ""


def load_plan(path: Path) -> tuple[Plan, str]:
    """The validated plan and its text; every problem is one InputError line naming the line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"plan {path} does not exist", hint="pass the path of a plan YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})",
                         hint="save the plan as UTF-8") from None
    from mobius.ops.plan_yaml import RefusedYaml, YAMLError, line_of, read_yaml  # only a plan file needs yaml

    try:
        root, data = read_yaml(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        what = "" if isinstance(exc, RefusedYaml) else "not valid YAML: "
        raise InputError(f"{path}{line}: {what}{getattr(exc, 'problem', exc)}",
                         hint="see docs/migrate.md for the plan format") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}:1: a plan is a mapping (name, type, steps, ...)", hint="see docs/migrate.md")
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        where = ".".join(str(p) for p in loc).replace("validate_", "validate") or "plan"
        message = error["msg"].removeprefix("Value error, ")
        raise InputError(f"{path}:{line_of(root, loc)}: {where}: {message}",
                         hint="see docs/migrate.md for the plan format") from None
    for idx, (name, params) in enumerate(plan.step_list()):
        factory = find_step(name)
        if factory is None:
            known = ", ".join(known_steps())
            raise InputError(f"{path}:{line_of(root, ('steps', idx))}: steps.{idx}: unknown step {name!r} "
                             f"(known: {known})", hint="see docs/migrate.md") from None
        try:
            factory(params)
        except ValidationError as exc:
            loc, message = _step_problem(name, exc)
            raise InputError(f"{path}:{line_of(root, ('steps', idx, name, *loc))}: steps.{idx}: {message}",
                             hint="see docs/migrate.md for each step's parameters") from None
        except InputError as exc:
            raise InputError(f"{path}:{line_of(root, ('steps', idx))}: steps.{idx}: {exc.message}",
                             hint="see docs/migrate.md") from None
    return plan, text
