"""Printing results: one JSON object under --json, readable lines otherwise; and confirmations."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mobius.cli.context import current
from mobius.errors import InputError


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value.resolve() if not value.is_absolute() else value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    return value


def emit(result: dict[str, Any], lines: Iterable[str] | str = ()) -> None:
    """The command's result: the JSON object under --json, else the human lines."""
    if current.json:
        sys.stdout.write(json.dumps({"ok": True, **_jsonable(result)}, ensure_ascii=False, default=str) + "\n")
    else:
        text = [lines] if isinstance(lines, str) else list(lines)
        for line in text:
            sys.stdout.write(line + "\n")
    sys.stdout.flush()


def say(line: str) -> None:
    """A line for the person watching (step evidence); silent under --json."""
    if not current.json:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def confirm(question: str, *, yes: bool) -> bool:
    """True when --yes or the person agrees; refuses (exit 1) rather than wait on a non-terminal stdin."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise InputError(f"{question} needs confirmation and stdin is not a terminal", hint="pass --yes to confirm")
    import typer

    return typer.confirm(question, default=False, err=True)
