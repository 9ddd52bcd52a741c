"""`mobius init`: create a workspace."""

from __future__ import annotations

import typer

from mobius.cli.context import current
from mobius.cli.options import changes
from mobius.cli.output import emit
from mobius.config import find_workspace_root
from mobius.workspace.init import initialize


@changes
def init_command(
    directory: str = typer.Argument(None, help="Workspace folder (default: --workspace or the current folder)"),
    sample: bool = typer.Option(False, "--sample", help="Generate the sample library, games and database rows."),
) -> None:
    """Create a workspace: .env, library, backups/, games/, logs/, state/ ...

    Example: mobius init ./ws --sample
    """
    root = find_workspace_root(directory or current.workspace_option or ".")  # refuses a URL
    ws, result = initialize(root, sample=sample, progress=current.progress())
    current.set_workspace(ws)
    lines = [f"workspace {ws.root}"]
    lines += [f"  created {name}" for name in result.created] or ["  layout already present"]
    lines += [f"  sample {key}: {value}" for key, value in result.sample.items()]
    emit(result.to_dict(), lines)


def register(app: typer.Typer) -> None:
    app.command("init")(init_command)
