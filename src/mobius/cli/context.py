"""What every command shares: the global options and the workspace they select.

Global options are accepted anywhere on the command line (before or after the subcommand). They are
declared once, in `GLOBAL_OPTIONS`, and parsed once, by `lift_global_options`, which `main` runs before
Typer parses the rest; the root `--help` lists them from the same table.

This module is imported by every start-up, `mobius --help` included: what loads a workspace (settings,
modes, the log file) is imported inside `RunContext.workspace`, for start-up time.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from mobius.config import Workspace
    from mobius.progress import Progress


class GlobalOption(NamedTuple):
    """One option every command accepts, wherever it stands on the command line."""

    names: tuple[str, ...]
    attr: str  # the RunContext field it sets
    metavar: str | None  # None: a flag
    help: str


GLOBAL_OPTIONS = (
    GlobalOption(("--workspace", "-w"), "workspace_option", "DIR",
                 "Workspace folder (default: MOBIUS_WORKSPACE or .)."),
    GlobalOption(("--env",), "env_name", "NAME", "Environment: environments/NAME.env (default: MOBIUS_ENV)."),
    GlobalOption(("--json",), "json", None, "Print exactly one JSON object with the result."),
    GlobalOption(("--log-format",), "log_format", "console|json", "Log lines on stderr: console or json."),
    GlobalOption(("--syslog",), "syslog", None, "Also send events to syslog, tag 'migration'."),
    GlobalOption(("--verbose", "-v"), "verbosity", None, "More log output; -v shows tracebacks (repeatable: -vv)."),
)
_BY_NAME = {name: option for option in GLOBAL_OPTIONS for name in option.names}
_VERBOSE_SHORT = {"-vv": 2, "-vvv": 3, "-vvvv": 4}


def global_options_line() -> str:
    """The global options on one line, for the end of every command's `--help`."""
    names = ", ".join(o.names[-1 if len(o.names[-1]) == 2 else 0] + (f" {o.metavar}" if o.metavar else "")
                      for o in GLOBAL_OPTIONS)
    return f"\b\nGlobal options (anywhere on the line; see `mobius --help`):\n{names}"


def global_options_help() -> str:
    """The global options as help lines (the root `--help` shows them)."""
    rows = [(", ".join(o.names) + (f" {o.metavar}" if o.metavar else ""), o.help) for o in GLOBAL_OPTIONS]
    width = max(len(left) for left, _ in rows)
    return "\n".join(f"  {left:<{width}}  {text}" for left, text in rows)


@dataclass
class RunContext:
    workspace_option: str | None = None
    json: bool = False
    log_format: str = "console"
    syslog: bool = False
    verbosity: int = 0
    command: str = "mobius"
    env_name: str | None = None
    yes: bool = False  # --yes of a command that changes something: every confirm() is answered yes
    dry_run: bool = False  # --dry-run: the run changes nothing, the workspace's own upkeep included
    _workspace: Workspace | None = field(default=None, repr=False)

    def workspace(self) -> Workspace:
        """The selected workspace, loaded once; attaches the run's log file when it is initialized, fixes
        modes, finishes interrupted swaps and sweeps leftovers, except in a dry run (which changes nothing)."""
        if self._workspace is None:
            from mobius.config import load_workspace, require_workspace  # here for start-up time

            self._workspace = load_workspace(require_workspace(self.workspace_option), env=self.env_name)
            if self.dry_run:
                return self._workspace
            from mobius import log, notify
            from mobius.workspace.modes import make_private  # here for start-up time

            if self._workspace.env_file.exists() or self._workspace.logs.is_dir():
                log.attach_log_file(self._workspace.logs, self.command)
            make_private(self._workspace)
            notify.install(self._workspace)  # MOBIUS_NOTIFY: people hear of what this command records
            self._repair_interrupted_swaps(self._workspace)
            self._sweep_leftovers(self._workspace)
        return self._workspace

    @staticmethod
    def _sweep_leftovers(ws: Workspace) -> None:
        """Remove what killed runs left (temp dumps in backups/, partial renders in out/<slug>/, staging
        beside tests/golden, temp files in an unfinished media migration's target, scratch folders in the
        system temp folder); those of running processes stay."""
        from mobius.safety.leftovers import sweep, sweep_system_temp

        try:
            sweep([ws.backups, ws.root / "tests", ws.state])
            sweep([ws.out], recursive=True)
            if (ws.state / "media.sqlite").is_file():  # mobius.media is imported only where it migrated
                from mobius.media.leftovers import sweep_migration_targets

                removed = sweep_migration_targets(ws)
                if removed:
                    sys.stderr.write(f"mobius: removed {len(removed)} temp files a killed media migration left in "
                                     f"its target\n")
            sweep_system_temp()
        except OSError as exc:  # never the reason a command fails
            from mobius import log

            log.get_logger().warning("leftovers.sweep_failed", error=str(exc))

    @staticmethod
    def _repair_interrupted_swaps(ws: Workspace) -> None:
        """Finish a folder swap a killed command left half-done (library, goldens), and say so."""
        from mobius.config import is_url
        from mobius.safety.swap import recover_swap

        folders = [ws.golden] + ([] if is_url(ws.library) else [ws.library_path])
        for folder in folders:
            recovery = recover_swap(folder)
            if recovery is not None:
                sys.stderr.write(f"mobius: {recovery.message()}\n")

    @property
    def loaded_workspace(self) -> Workspace | None:
        """The workspace if a command has loaded it (for error messages), without loading it."""
        return self._workspace

    def set_workspace(self, ws: Workspace) -> Workspace:
        """Adopt a workspace created or changed by this run (init, .env switches)."""
        self._workspace = ws
        if not self.dry_run:
            from mobius import log

            log.attach_log_file(ws.logs, self.command)
        return ws

    @property
    def watching(self) -> bool:
        """A person is watching: stdout is a terminal and no machine-readable output was asked for."""
        return not self.json and sys.stdout.isatty()

    def progress(self) -> Progress:
        from mobius.progress import NoProgress, RichProgress  # here for start-up time

        return RichProgress() if self.watching else NoProgress()


current = RunContext()


def lift_global_options(argv: list[str]) -> tuple[RunContext, list[str]]:
    """Split argv into the global options (`GLOBAL_OPTIONS`) and the rest; stops at `--`.

    The one parser of global options: Typer never sees them, so they may stand anywhere on the line."""
    ctx = RunContext()
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name, eq, inline = arg.partition("=")
        option = _BY_NAME.get(arg) or _BY_NAME.get(name)
        if arg in _VERBOSE_SHORT:
            ctx.verbosity += _VERBOSE_SHORT[arg]
        elif option is not None and option.metavar is None and not eq:
            if option.attr == "verbosity":
                ctx.verbosity += 1
            else:
                setattr(ctx, option.attr, True)
        elif option is not None and option.metavar is not None and (eq or i + 1 < len(argv)):
            if eq:
                value = inline
            else:
                value = argv[i + 1]
                i += 1
            setattr(ctx, option.attr, value)
        else:
            rest.append(arg)
        i += 1
    ctx.command = " ".join(a for a in rest[:2] if not a.startswith("-")) or "mobius"
    return ctx, rest
