"""`mobius config`: show the effective settings and set one atomically."""

from __future__ import annotations

import typer

from mobius.cli.context import current
from mobius.cli.options import changes
from mobius.cli.output import emit
from mobius.config import setting_sources

config_app = typer.Typer(help="Show and change the workspace settings.", no_args_is_help=True)


@config_app.command("show")
def show() -> None:
    """Print each effective setting and where it came from (secrets masked).

    Example: mobius config show --workspace .
    """
    ws = current.workspace()
    rows = setting_sources(ws)
    width = max(len(str(r["name"])) for r in rows)
    emit(
        {"workspace": ws.root, "settings": rows},
        [f"workspace {ws.root}"] + [f"{r['name']:<{width}}  {r['value']}  ({r['source']})" for r in rows],
    )


@config_app.command("set")
@changes
def set_value(key: str = typer.Argument(..., help="Setting name, e.g. MOBIUS_ENV or env"),
              value: str = typer.Argument(...)) -> None:
    """Set one setting in the workspace .env atomically, keeping comments and order.

    Example: mobius config set MOBIUS_ENV staging
    """
    from mobius.ops.plain import run_step

    ws = current.workspace()
    change = run_step(ws, "config.set", "config.set", {"setting": {key: value}})
    current.set_workspace(ws.reload())
    shown = change.to_dict()
    emit(shown, f"{change.name}={shown['value']} (was {shown['previous']}) in {ws.env_file}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
