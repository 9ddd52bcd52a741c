"""Where environments live (`environments/<name>.env` beside the workspace `.env`) and how one is loaded.

An environment is the workspace's settings with its file layered on top: process environment >
environments/<name>.env > .env > defaults (config.load_workspace does the layering).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mobius.config import ENVIRONMENTS_DIR, Workspace, environment_file, load_workspace, mask_secret, mask_text
from mobius.safety.envfile import read_env_file


@dataclass(frozen=True)
class EnvironmentInfo:
    """One environment: its file and the four places it owns, with secrets masked."""

    name: str
    file: Path
    library: str
    database: str
    backups: Path
    service_url: str | None


def environment_names(root: Path) -> list[str]:
    folder = root / ENVIRONMENTS_DIR
    return sorted(p.stem for p in folder.glob("*.env") if p.is_file()) if folder.is_dir() else []


def load_environment(root: Path, name: str) -> Workspace:
    """The workspace as environment `name` sees it; unknown or malformed: InputError (exit 1)."""
    return load_workspace(root, env=name)


def describe(ws: Workspace) -> EnvironmentInfo:
    return EnvironmentInfo(name=ws.environment or "(workspace)", file=ws.env_file, library=ws.library,
                           database=mask_text(ws.database_url), backups=ws.backups,
                           service_url=mask_text(ws.settings.service_url) if ws.settings.service_url else None)


def list_environments(root: Path) -> list[EnvironmentInfo]:
    return [describe(load_environment(root, name)) for name in environment_names(root)]


def show_environment(root: Path, name: str) -> dict[str, object]:
    """The environment's own file values and its effective places, secrets masked."""
    ws = load_environment(root, name)
    file_values = read_env_file(environment_file(root, name))
    return {"environment": describe(ws),
            "values": {key: mask_secret(key, value) for key, value in file_values.items()}}
