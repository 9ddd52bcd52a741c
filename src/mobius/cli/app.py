"""The `mobius` console script: global options, sub-commands, and the one place errors become exit codes."""

from __future__ import annotations

import difflib
import errno
import gc
import importlib
import sys
import time
import traceback
from typing import Any, NamedTuple

import typer

from mobius import __version__, log
from mobius.cli import typer_coercion
from mobius.cli.context import current, global_options_help, global_options_line, lift_global_options

try:  # Typer >= 0.26 vendors Click under typer._click
    from typer._click import exceptions as click_exceptions
    from typer._click.utils import make_default_short_help
except ImportError:  # pragma: no cover - older Typer
    from click import exceptions as click_exceptions
    from click.utils import make_default_short_help

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
from mobius.masking import mask_text
from mobius.printable import printable as _printable

typer_coercion.install()  # plain option values skip pydantic: 0.1-0.2 s of every start-up (see the module)


class LazyCommand(NamedTuple):
    """A top-level command: the module whose `register(app)` adds it, and its one-line help for `mobius --help`."""

    module: str
    help: str


# Every top-level command, in the order `mobius --help` lists them. A command's module is imported only
# when that command runs (or its own --help is asked): the capabilities' imports stay out of every other
# start-up. The one-line help must be the command's own (tests/core/test_cli_options.py holds them equal).
COMMANDS: dict[str, LazyCommand] = {
    "init": LazyCommand("mobius.cli.init", "Create a workspace: .env, library, backups/, games/, logs/, state/ ..."),
    "config": LazyCommand("mobius.cli.config", "Show and change the workspace settings."),
    "backup": LazyCommand("mobius.cli.backup", "Verified backups of the library: archives and an incremental snapshot "
                          "repository (create, list, verify, restore, test-restore, prune, export, copy)."),
    "media": LazyCommand("mobius.cli.media", "Media library: manifests, verification, verified migration to a folder "
                         "or s3://."),
    "db": LazyCommand("mobius.cli.db", "Database schema migrations (SQLite or PostgreSQL), dumps and checks."),
    "render": LazyCommand("mobius.cli.render", "Render tutorial previews: H.264 960x540 30 fps, AAC stereo at -16 "
                          "LUFS; several games in parallel."),
    "pipeline": LazyCommand("mobius.cli.render", "The rendering pipeline's self-test (the runbook's test-pipeline)."),
    "golden": LazyCommand("mobius.cli.golden", "Golden files: pin a preview's every frame, soundtrack, loudness and "
                          "container; check renders against them."),
    "demo": LazyCommand("mobius.cli.demo", "Create a sample workspace and run every Mobius step on it, then "
                        "summarize."),
    "migrate": LazyCommand("mobius.cli.migrate", "Run the migration runbook as one plan: preflight, steps, monitors, "
                           "validation, automatic rollback, reports."),
    "history": LazyCommand("mobius.cli.migrate", "Every operation Mobius recorded in this workspace "
                           "(state/operations.sqlite), newest first."),
    "serve": LazyCommand("mobius.cli.serve", "Serve /health, /ready, /metrics, /api/games, "
                         "/api/operations|backups|golden and the status page at /."),
    "library": LazyCommand("mobius.cli.library", "Image fingerprints (dHash): hash the library, find duplicates and "
                           "similar images, migrate the hash version."),
    "env": LazyCommand("mobius.cli.envs", "Named environments: list, show, diff, validate, promote."),
    "deploy": LazyCommand("mobius.cli.envs", "Preflight, backup, migrations (rehearsed first), pipeline self-test, "
                          "release record, restart, health gate."),
    "rollback": LazyCommand("mobius.cli.envs", "Verify the backup, back up the current state, restore library + "
                            "database + settings, health gate."),
    "releases": LazyCommand("mobius.cli.envs", "Deploys and rollbacks of an environment, newest first, with the "
                            "backup each one took."),
    "notify": LazyCommand("mobius.cli.notify", "Notifications by webhook and e-mail (MOBIUS_NOTIFY)."),
}


class LazyGroup(typer.core.TyperGroup):
    """The root group: lists every command from `COMMANDS`, imports a command's module when it is needed."""

    def _load(self, name: str) -> None:
        """Import the module of `name` and add every command its `register` adds."""
        module = importlib.import_module(COMMANDS[name].module)
        holder = typer.Typer(rich_markup_mode=None)
        module.register(holder)
        built: Any = typer.main.get_command(holder)
        commands = built.commands if hasattr(built, "commands") else {built.name: built}
        for command_name, command in commands.items():
            self.commands.setdefault(command_name, command)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self._load(cmd_name)
        command = self.commands.get(cmd_name)
        if command is not None:
            _add_global_options_line(command)
        return command

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """As Typer's, with "Did you mean" drawn from every command, not only the imported ones."""
        try:
            return self._click_resolve_command(ctx, args)
        except click_exceptions.UsageError as exc:
            matches = difflib.get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if matches:
                exc.message = exc.message.rstrip(".") + f". Did you mean {', '.join(map(repr, matches))}?"
            raise

    def list_commands(self, ctx: Any) -> list[str]:
        return [*[n for n in self.commands if n not in COMMANDS], *COMMANDS]

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The command list from the one-line helps, without importing any command's module."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            text = command.get_short_help_str(limit) if command is not None else \
                make_default_short_help(COMMANDS[name].help, limit)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _add_global_options_line(command: Any) -> None:
    """End the help of `command` (and of each sub-command) with the global options every command takes."""
    if command.epilog is None:
        command.epilog = global_options_line()
    for sub in getattr(command, "commands", {}).values():
        _add_global_options_line(sub)


HELP = f"""Mobius: the MOBIUS Games pipeline's operations system.

Every step of the migration runbook as a command that checks its own work.

\b
Global options (accepted before or after the sub-command, by every command):
{global_options_help()}

{EXIT_CODES_HELP}
"""

app = typer.Typer(
    name="mobius",
    cls=LazyGroup,
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root() -> None:
    """The global options are lifted out of argv by `lift_global_options` (one parser) before Typer runs."""


@app.command("version")
def version_command() -> None:
    """Print the Mobius version.

    Example: mobius version --json
    """
    from mobius.cli.output import emit

    emit({"version": __version__}, f"mobius {__version__}")


def _fail(code: int, message: str) -> int:
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
        for detail in exc.details:
            sys.stderr.write(f"  {_printable(mask_text(str(detail)))}\n")
        code = _fail(exc.exit_code, exc.one_line())
        logger.error("command.failed", console=False, error=exc.message, exit_code=exc.exit_code,
                     details=exc.details[:50])
    except typer.Abort:
        code = _fail(EXIT_INPUT, "aborted")
    except click_exceptions.NoArgsIsHelpError as exc:  # `mobius` or `mobius db` alone: the help, as --help shows it
        sys.stdout.write(exc.format_message() + "\n")
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
    """The `mobius` process: one command line, then exit with its code.

    What is alive when the command has ended is frozen for the garbage collector (`gc.freeze`): the
    interpreter's collections at exit would otherwise walk every object of SQLAlchemy, pydantic and Typer
    once more to find cycles nobody needs freed (about 0.1 s of CPU at the end of an `env promote`: 0.73 -> 0.60 s
    with nothing to promote, medians of 6 interleaved runs; docs/envs.md). Nothing is skipped that writes: every
    command writes, fsyncs and closes its files and records before it returns; objects are still freed by
    their reference counts, only cycles among them are left to the process's end (golden check did this first).
    """
    code = run(sys.argv[1:])
    gc.freeze()
    sys.exit(code)
