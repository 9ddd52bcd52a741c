"""Printing results: one JSON object under --json, readable lines otherwise; and confirmations."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from mobius.cli.context import current
from mobius.errors import InputError
from mobius.printable import printable
from mobius.results import dumps, to_jsonable


def emit(result: dict[str, Any], lines: Iterable[str] | str = ()) -> None:
    """The command's result: the JSON object under --json, else the human lines, each exactly one line
    (a newline or escape inside one is shown as \\xNN: pass a text's `.splitlines()`)."""
    if current.json:
        sys.stdout.write(dumps({"ok": True, **to_jsonable(result)}) + "\n")
    else:
        text = [lines] if isinstance(lines, str) else list(lines)
        for line in text:
            sys.stdout.write(printable(line) + "\n")  # one line each, no escape sequence reaches the terminal
    sys.stdout.flush()


def say(line: str) -> None:
    """A line for the person watching (step evidence); silent under --json."""
    if not current.json:
        sys.stdout.write(printable(line) + "\n")
        sys.stdout.flush()


def confirm(question: str, *, yes: bool) -> bool:
    """True when --yes (the command's, or `current.yes`) or the person agrees; refuses (exit 1) rather than
    wait on a non-terminal stdin."""
    if yes or current.yes:
        return True
    if not sys.stdin.isatty():
        raise InputError(f"{question} needs confirmation and stdin is not a terminal", hint="pass --yes to confirm")
    import typer

    return typer.confirm(printable(question), default=False, err=True)
