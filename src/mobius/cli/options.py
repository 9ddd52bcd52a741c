"""Options several commands share, defined once: the same names, short forms and help everywhere.

Command modules take these as parameter defaults (`workers: int = WORKERS`) and never write their own
`typer.Option("--yes", ...)`. A command that changes something is decorated with `@changes`: it then accepts
`-y/--yes` and `--dry-run` whether or not its body has a use for them, and `--dry-run` never reaches a body
that cannot honour it (see `changes`). `--json` is a global option (`GLOBAL_OPTIONS` in `mobius.cli.context`):
every command takes it, wherever it stands on the line.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from mobius.cli.context import current
from mobius.cli.output import emit
from mobius.masking import MASK, VARIABLE_NAME, is_secret_name, mask_text

YES = typer.Option(False, "--yes", "-y", help="Answer yes to every confirmation (needed without a terminal).")
DRY_RUN = typer.Option(False, "--dry-run", help="Show what would happen; change nothing.")
WORKERS = typer.Option(None, "--workers", help="Parallel workers (processes or threads, as the work needs); "
                                                "default: chosen from the CPU count (serve: 1).")
EXECUTOR = typer.Option(None, "--executor", help="Where per-item work (games, files to hash) runs: local (a pool "
                                                   "on this machine) or dask (MOBIUS_DASK_SCHEDULER, else a local "
                                                   "cluster). Default: MOBIUS_EXECUTOR, else local.")

CHANGES = "__mobius_changes__"
"""Attribute `@changes` sets on a command function (tests find the commands that change something by it)."""

F = TypeVar("F", bound=Callable[..., Any])


def changes(func: F) -> F:
    """Mark a command that changes something: it accepts `-y/--yes` and `--dry-run`.

    A body that takes `yes` / `dry_run` gets them. `--yes` is also kept in `current.yes`, which every
    `confirm` honours. Under `--dry-run` a body without a `dry_run` parameter is not called: the command
    prints what it would run (the command and its options) and changes nothing. In every dry run the
    workspace is loaded without its repairs, sweeps and log file (`RunContext.workspace`).
    """
    signature = inspect.signature(func)
    takes_yes = "yes" in signature.parameters
    takes_dry_run = "dry_run" in signature.parameters
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=bool)
             for name, default, taken in (("yes", YES, takes_yes), ("dry_run", DRY_RUN, takes_dry_run))
             if not taken]

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        yes = kwargs.get("yes", False) if takes_yes else kwargs.pop("yes", False)
        dry_run = kwargs.get("dry_run", False) if takes_dry_run else kwargs.pop("dry_run", False)
        current.yes = current.yes or bool(yes)
        current.dry_run = current.dry_run or bool(dry_run)
        if dry_run and not takes_dry_run:
            return describe_dry_run(func, args, kwargs)
        return func(*args, **kwargs)

    command.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *extra])  # type: ignore[attr-defined]
    command.__annotations__ = {**func.__annotations__, **{p.name: "bool" for p in extra}}
    setattr(command, CHANGES, True)
    return command  # type: ignore[return-value]


def describe_dry_run(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """The dry run of a command that has no plan to show: what would run, with which values; nothing runs."""
    values = _shown(dict(zip(inspect.signature(func).parameters, args, strict=False)) | kwargs)
    command = f"mobius {current.command}"
    emit({"dry_run": True, "changed": False, "command": command, "options": values},
         [f"dry run: `{command}` would run with " + (", ".join(f"{k}={v!r}" for k, v in values.items()) or
                                                      "no options"),
          "nothing was changed"])


def _shown(values: dict[str, Any]) -> dict[str, Any]:
    """The values as a dry run may print them: URL passwords masked; a secret's value (`config set
    MOBIUS_API_TOKEN VALUE`, or an option named like a secret) replaced by the mask."""
    from mobius.config import is_secret_field  # here for start-up time: a command's --help needs no settings

    def names_secret(value: object) -> bool:
        return isinstance(value, str) and bool(VARIABLE_NAME.match(value)) and is_secret_name(value)

    about_a_secret = any(names_secret(value) for value in values.values())
    shown: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, str):
            secret = is_secret_field(name) or (about_a_secret and not names_secret(value))
            shown[name] = MASK if secret else mask_text(value)
        else:
            shown[name] = value
    return shown
