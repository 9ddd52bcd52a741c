"""Structured events: one call site, three sinks.

Every event goes to the run's JSON-lines file in `logs/` (always), to stderr (readable lines
on a terminal, JSON lines with --log-format json), and to syslog with the tag `migration`
when asked (the runbook's `logger -t migration`).
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

from mobius.safety.stamps import utc_compact


def _import_structlog():  # noqa: ANN202
    """structlog without rich: structlog.dev imports rich for pretty tracebacks that our sinks never
    use, about 50 ms of every command's start-up (measured with -X importtime). Progress bars still
    import rich when they are shown."""
    if "rich" in sys.modules:
        import structlog
    else:
        sys.modules["rich"] = None  # type: ignore[assignment]
        try:
            import structlog
        finally:
            del sys.modules["rich"]
    return structlog


structlog = _import_structlog()

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
SYSLOG_TAG = "migration"


@dataclass
class LogSinks:
    """The final structlog processor: fans an event out to file, console and syslog."""

    console_level: int = logging.WARNING
    console_format: str = "console"
    file: IO[str] | None = None
    syslog: Any = None
    console: IO[str] = field(default_factory=lambda: sys.stderr)

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> str:
        level = LEVELS.get(method, 20)
        to_console = event.pop("console", True)
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
        raise structlog.DropEvent


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
    structlog.contextvars.bind_contextvars(command=command, pid=os.getpid())


def attach_log_file(log_dir: Path, command: str = "mobius") -> Path | None:
    """Append this run's events as JSON lines to a new file in `log_dir`; None if it cannot."""
    if _sinks.file is not None:
        return Path(_sinks.file.name)
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        stamp = utc_compact()
        safe = command.replace(" ", "-").replace("/", "_")[:60]
        log_file = log_dir / f"{stamp}-{os.getpid()}-{safe}.jsonl"
        _sinks.file = open(log_file, "a", encoding="utf-8")  # noqa: SIM115 - lives for the run
    except OSError:
        return None
    return log_file


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name) if name else structlog.get_logger()


def _masked(value: Any) -> Any:
    from mobius.config import mask_text  # here: config imports modules that log

    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, BaseException | Path):
        return mask_text(str(value))
    return value


def mask_event(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Hide URL passwords (userinfo and query string) in every value before any sink sees it."""
    return {key: _masked(value) for key, value in event.items()}


def _to_current_sinks(logger: Any, method: str, event: dict[str, Any]) -> str:
    return _sinks(logger, method, event)


structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_event,
        _to_current_sinks,
    ],
    cache_logger_on_first_use=False,
)
