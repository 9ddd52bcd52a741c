"""Structured events: one call site, three sinks.

Every event goes to the run's JSON-lines file in `logs/` (always), to stderr (readable lines
on a terminal, JSON lines with --log-format json), and to syslog with the tag `migration`
when asked (the runbook's `logger -t migration`).

`get_logger().info("media.copy.done", files=3)` builds one dict: the keywords, the event name,
the run's bound fields (command, pid), the level and a UTC timestamp; masks URL passwords in
every value; and hands it to the sinks. That is all Mobius needs of a structured logger, written
here: structlog's import alone was about 55 ms of every command's start-up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mobius.masking import mask_text
from mobius.stamps import utc_compact, utc_iso

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
SYSLOG_TAG = "migration"


@dataclass
class LogSinks:
    """Fans an event out to file, console and syslog."""

    console_level: int = logging.WARNING
    console_format: str = "console"
    file: IO[str] | None = None
    syslog: Any = None
    console: IO[str] = field(default_factory=lambda: sys.stderr)

    def __call__(self, method: str, event: dict[str, Any]) -> None:
        level = LEVELS.get(method, 20)
        to_console = event.pop("console", True)
        # Plain json.dumps, not mobius.results.to_jsonable: importing results (dataclasses, stamps,
        # secrets, errors) costs ~15 ms of start-up and log.py loads on every command; events are
        # built from plain values and str() is the fallback for the rest.
        line = json.dumps(event, default=str, ensure_ascii=False)
        if self.file is not None and level >= logging.INFO:
            try:
                self.file.write(line + "\n")
                self.file.flush()
            except (OSError, ValueError) as exc:
                _drop_file_of(self, exc)
        if self.syslog is not None and level >= logging.INFO:
            self.syslog.syslog(_syslog_priority(self.syslog, level), line)
        if to_console and level >= self.console_level:
            self.console.write((line if self.console_format == "json" else _readable(event)) + "\n")
            self.console.flush()


def _drop_file_of(sinks: LogSinks, exc: BaseException) -> None:
    """The log file cannot be written (full disk, removed folder): warn once and carry on without it.
    Logging must never be the reason a command fails."""
    broken, sinks.file = sinks.file, None
    name = getattr(broken, "name", "the log file")
    with contextlib.suppress(Exception):
        broken.close()
    reason = getattr(exc, "strerror", None) or str(exc)
    with contextlib.suppress(Exception):
        sinks.console.write(f"mobius: warning: cannot write the log file {name} ({reason}); "
                            "carrying on without it\n")
        sinks.console.flush()


def _readable(event: dict[str, Any]) -> str:
    rest = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("event", "level", "timestamp"))
    return f"{event.get('level', 'info'):<7} {event.get('event')} {rest}".rstrip()


def _syslog_priority(module: Any, level: int) -> int:
    if level >= logging.ERROR:
        return module.LOG_ERR
    if level >= logging.WARNING:
        return module.LOG_WARNING
    return module.LOG_INFO


_sinks = LogSinks()
_bound: dict[str, Any] = {}  # fields every event of this run carries (command, pid)


def configure(*, verbosity: int = 0, log_format: str = "console", command: str = "mobius",
              use_syslog: bool = False) -> None:
    """Set up the console and syslog sinks for this run; the file sink comes with the workspace."""
    global _sinks
    console_level = logging.WARNING
    if verbosity == 1 or (log_format == "json" and verbosity == 0):
        console_level = logging.INFO
    elif verbosity >= 2:
        console_level = logging.DEBUG
    syslog_module = None
    if use_syslog:
        import syslog as syslog_module

        syslog_module.openlog(SYSLOG_TAG, 0, syslog_module.LOG_USER)
    _sinks = LogSinks(console_level=console_level, console_format=log_format, syslog=syslog_module)
    _bound.clear()
    _bound.update(command=command, pid=os.getpid())


def attach_log_file(log_dir: Path, command: str = "mobius") -> Path | None:
    """Append this run's events as JSON lines to a new file in `log_dir`; None if it cannot."""
    if _sinks.file is not None:
        return Path(_sinks.file.name)
    try:
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # logs may name secrets' places: owner only
        stamp = utc_compact()
        safe = command.replace(" ", "-").replace("/", "_")[:60]
        log_file = log_dir / f"{stamp}-{os.getpid()}-{safe}.jsonl"
        _sinks.file = open(log_file, "a", encoding="utf-8",  # noqa: SIM115 - lives for the run
                           opener=lambda name, flags: os.open(name, flags, 0o600))  # owner only, as its folder
    except OSError:
        return None
    return log_file


class Logger:
    """What `get_logger` returns: `log.info("event.name", key=value, ...)`, one method per level."""

    __slots__ = ("name",)

    def __init__(self, name: str | None = None):
        self.name = name

    def debug(self, event: str, **fields: Any) -> None:
        _emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        _emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        _emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        _emit("error", event, fields)

    def critical(self, event: str, **fields: Any) -> None:
        _emit("critical", event, fields)


def get_logger(name: str | None = None) -> Logger:
    return Logger(name)


def _emit(level: str, event: str, fields: dict[str, Any]) -> None:
    record = {**fields, "event": event}
    for key, value in _bound.items():
        record.setdefault(key, value)
    record["level"] = level
    record["timestamp"] = utc_iso()  # the one stamp format (mobius.stamps)
    _sinks(level, mask_event(record))


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, BaseException | Path):
        return mask_text(str(value))
    return value


def mask_event(event: dict[str, Any]) -> dict[str, Any]:
    """Hide URL passwords (userinfo and query string) in every value before any sink sees it."""
    return {key: _masked(value) for key, value in event.items()}
