"""The `mobius` console script: global options, sub-commands, and the one place errors become exit codes."""

from __future__ import annotations

import errno
import sys
import time
import traceback

import typer

from mobius import __version__, log
from mobius.cli import (
    backup,
    config,
    db,
    demo,
    envs,
    golden,
    init,
    library,
    media,
    migrate,
    notify,
    render,
    serve,
)
from mobius.cli.context import current, lift_global_options

try:  # Typer >= 0.26 vendors Click under typer._click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older Typer
    from click import exceptions as click_exceptions

from mobius.errors import (
    EXIT_CODES_HELP,
    EXIT_INPUT,
    EXIT_RESOURCE,
    EXIT_VERIFY,
    MobiusError,
    is_disk_full,
    is_read_only,
    read_only_folder,
)
from mobius.printable import printable as _printable

HELP = f"""Mobius: the MOBIUS Games pipeline's operations system.

Every step of the migration runbook as a command that checks its own work.

Global options (accepted before or after the sub-command): --workspace DIR, --env NAME, --json,
--log-format console|json, --syslog, -v.

{EXIT_CODES_HELP}
"""

app = typer.Typer(
    name="mobius",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    workspace: str = typer.Option(None, "--workspace", "-w", help="Workspace folder (default: MOBIUS_WORKSPACE or .)"),
    json_output: bool = typer.Option(False, "--json", help="Print exactly one JSON object with the result."),
    log_format: str = typer.Option("console", "--log-format", help="Log lines on stderr: console or json."),
    syslog: bool = typer.Option(False, "--syslog", help="Also send events to syslog, tag 'migration'."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output; -v shows tracebacks."),
) -> None:
    """Options are documented here; main() lifts them out of argv wherever they stand."""


@app.command("version")
def version_command() -> None:
    """Print the Mobius version.

    Example: mobius version --json
    """
    from mobius.cli.output import emit

    emit({"version": __version__}, f"mobius {__version__}")


COMMAND_MODULES = (
    init,
    config,
    backup,
    media,
    db,
    render,
    golden,
    demo,
    migrate,
    serve,
    library,
    envs,
    notify,
)
for module in COMMAND_MODULES:
    module.register(app)


def _fail(code: int, message: str) -> int:
    from mobius.config import mask_text

    message = mask_text(message)
    sys.stderr.write(f"mobius: error: {_printable(message)}\n")
    if current.json:
        import json

        sys.stdout.write(json.dumps({"ok": False, "exit_code": code, "error": message}, ensure_ascii=False) + "\n")
    return code


def _read_only_failure(exc: BaseException) -> bool:
    """A write refused by a read-only mount; SQLite says only 'unable to open database file' when it cannot
    create a database's journal there, so that counts when the workspace is on a read-only mount."""
    if is_read_only(exc):
        return True
    ws = current.loaded_workspace
    return ws is not None and "unable to open database file" in str(exc) and read_only_folder(ws.state)


def run(argv: list[str]) -> int:
    """Run one command line; returns the exit code instead of exiting."""
    parsed, rest = lift_global_options(argv)
    current.__dict__.update(parsed.__dict__)
    if current.log_format not in ("console", "json"):
        return _fail(EXIT_INPUT, f"--log-format must be console or json, not {current.log_format!r}")
    log.configure(verbosity=current.verbosity, log_format=current.log_format, command=current.command,
                  use_syslog=current.syslog)
    logger = log.get_logger()
    started = time.monotonic()
    code = 0
    try:
        result = app(args=rest, prog_name="mobius", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except MobiusError as exc:
        from mobius.config import mask_text

        for detail in exc.details:
            sys.stderr.write(f"  {_printable(mask_text(str(detail)))}\n")
        code = _fail(exc.exit_code, exc.one_line())
        logger.error("command.failed", console=False, error=exc.message, exit_code=exc.exit_code,
                     details=exc.details[:50])
    except typer.Abort:
        code = _fail(EXIT_INPUT, "aborted")
    except click_exceptions.ClickException as exc:
        where = exc.ctx.command_path if getattr(exc, "ctx", None) else "mobius"
        code = _fail(EXIT_INPUT, f"{exc.format_message()} (see `{where} --help`)")
    except KeyboardInterrupt:
        code = _fail(130, "interrupted; run the same command again to resume")
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        read_only = exc.errno == errno.EROFS
        where = f" ({exc.filename})" if exc.filename else ""
        hint = (" (free some space, then run the same command again)" if full else
                " (the folder is read-only: remount it read-write, or work on a writable copy)" if read_only else "")
        if current.verbosity:
            traceback.print_exc()
        code = _fail(EXIT_RESOURCE if full or read_only else EXIT_VERIFY, f"{exc.strerror or exc}{where}{hint}")
        logger.error("command.failed", console=False, error=str(exc), exit_code=code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if current.verbosity:
            traceback.print_exc()
        if is_disk_full(exc):
            code = _fail(EXIT_RESOURCE, f"the disk is full: {type(exc).__name__}: {exc} "
                                        "(free some space, then run the same command again)")
            logger.error("command.failed", console=False, error=repr(exc), exit_code=code)
            logger.info("command.finished", exit_code=code, seconds=round(time.monotonic() - started, 3))
            return code
        if _read_only_failure(exc):
            ws = current.loaded_workspace
            place = (f"the workspace {ws.root} is on a read-only mount" if ws is not None and read_only_folder(ws.root)
                     else "a folder this command writes to is read-only")
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            code = _fail(EXIT_RESOURCE, f"{place}: {reason} (remount it read-write, or work on a writable copy)")
            logger.error("command.failed", console=False, error=repr(exc), exit_code=code)
            logger.info("command.finished", exit_code=code, seconds=round(time.monotonic() - started, 3))
            return code
        code = _fail(EXIT_VERIFY, f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)")
        logger.error("command.crashed", console=False, error=repr(exc), exit_code=code)
    logger.info("command.finished", exit_code=code, seconds=round(time.monotonic() - started, 3))
    return code


def main() -> None:
    sys.exit(run(sys.argv[1:]))
