"""`mobius config`: show the effective settings and set one atomically."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from mobius.cli.context import current
from mobius.cli.output import emit
from mobius.config import ENV_PREFIX, Settings, setting_sources
from mobius.errors import InputError
from mobius.safety.envfile import set_env_values

config_app = typer.Typer(help="Show and change the workspace settings.", no_args_is_help=True)


@config_app.command("show")
def show() -> None:
    """Print each effective setting and where it came from (secrets masked).

    Example: mobius config show --workspace ./ws
    """
    ws = current.workspace()
    rows = setting_sources(ws)
    width = max(len(str(r["name"])) for r in rows)
    emit(
        {"workspace": ws.root, "settings": rows},
        [f"workspace {ws.root}"] + [f"{r['name']:<{width}}  {r['value']}  ({r['source']})" for r in rows],
    )


@config_app.command("set")
def set_value(key: str = typer.Argument(..., help="Setting name, e.g. MOBIUS_ENV or env"),
              value: str = typer.Argument(...)) -> None:
    """Set one setting in the workspace .env atomically, keeping comments and order.

    Example: mobius config set MOBIUS_ENV staging
    """
    ws = current.workspace()
    name = key.upper()
    name = name if name.startswith(ENV_PREFIX) else ENV_PREFIX + name
    if name[len(ENV_PREFIX):].lower() not in Settings.model_fields:
        known = ", ".join(ENV_PREFIX + f.upper() for f in Settings.model_fields)
        raise InputError(f"unknown setting {name}", hint=f"known settings: {known}")
    try:
        Settings(**{name[len(ENV_PREFIX):].lower(): value})
    except ValidationError as exc:
        raise InputError(f"invalid value for {name}: {value!r}", hint=exc.errors()[0]["msg"]) from None
    previous = set_env_values(ws.env_file, {name: value})[name]
    current.set_workspace(ws.reload())
    emit({"name": name, "value": value, "previous": previous, "env_file": ws.env_file},
         f"{name}={value} (was {previous}) in {ws.env_file}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
