"""What every command shares: the global options and the workspace they select.

Global options are accepted anywhere on the command line (before or after the subcommand):
`main` lifts them out of argv before Typer parses the rest, and stores them here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from mobius import log, notify
from mobius.config import Workspace, load_workspace, require_workspace
from mobius.progress import NoProgress, Progress, RichProgress
from mobius.workspace.modes import make_private

GLOBAL_FLAGS = {"--json": "json", "--syslog": "syslog"}
GLOBAL_VALUES = {"--workspace": "workspace", "-w": "workspace", "--log-format": "log_format", "--env": "env_name"}
VERBOSE = {"-v": 1, "--verbose": 1, "-vv": 2, "-vvv": 3, "-vvvv": 4}


@dataclass
class RunContext:
    workspace_option: str | None = None
    json: bool = False
    log_format: str = "console"
    syslog: bool = False
    verbosity: int = 0
    command: str = "mobius"
    env_name: str | None = None
    _workspace: Workspace | None = field(default=None, repr=False)

    def workspace(self) -> Workspace:
        """The selected workspace, loaded once; attaches the run's log file when it is initialized."""
        if self._workspace is None:
            self._workspace = load_workspace(require_workspace(self.workspace_option), env=self.env_name)
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
        log.attach_log_file(ws.logs, self.command)
        return ws

    @property
    def watching(self) -> bool:
        """A person is watching: stdout is a terminal and no machine-readable output was asked for."""
        return not self.json and sys.stdout.isatty()

    def progress(self) -> Progress:
        return RichProgress() if self.watching else NoProgress()


current = RunContext()


def lift_global_options(argv: list[str]) -> tuple[RunContext, list[str]]:
    """Split argv into the global options and the rest; stops at `--`."""
    ctx = RunContext()
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name, eq, inline = arg.partition("=")
        if arg in GLOBAL_FLAGS:
            setattr(ctx, GLOBAL_FLAGS[arg], True)
        elif arg in VERBOSE:
            ctx.verbosity += VERBOSE[arg]
        elif name in GLOBAL_VALUES and (eq or i + 1 < len(argv)):
            if eq:
                value = inline
            else:
                value = argv[i + 1]
                i += 1
            attr = GLOBAL_VALUES[name]
            setattr(ctx, "workspace_option" if attr == "workspace" else attr, value)
        else:
            rest.append(arg)
        i += 1
    ctx.command = " ".join(a for a in rest[:2] if not a.startswith("-")) or "mobius"
    return ctx, rest
