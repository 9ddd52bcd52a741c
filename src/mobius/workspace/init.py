"""`mobius init`: lay out a workspace (DESIGN.md) and, with --sample, fill it with sample data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mobius.config import Workspace, load_workspace
from mobius.errors import InputError
from mobius.log import attach_log_file, get_logger
from mobius.progress import NoProgress, Progress
from mobius.safety.atomic import atomic_write_text
from mobius.safety.envfile import NEW_FILE_MODE
from mobius.workspace.modes import PRIVATE_FOLDER_MODE, make_private

DEFAULT_ENV = """# Mobius workspace settings (MOBIUS_*). Environment variables override these.
# Relative paths resolve against this folder.
MOBIUS_ENV=development
MOBIUS_LIBRARY_DIR=uploads
MOBIUS_BACKUP_DIR=backups
# MOBIUS_DATABASE_URL=postgresql://user:password@localhost/mobius   (default: SQLite mobius.db here)
"""

FOLDERS = ("backups", "games", "out", "tests/golden", "logs", "state")


@dataclass
class InitResult:
    workspace: Path
    created: list[str] = field(default_factory=list)
    sample: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"workspace": self.workspace, "created": self.created, "sample": self.sample}


def initialize(root: Path, *, sample: bool = False, progress: Progress | None = None) -> tuple[Workspace, InitResult]:
    """Create the workspace layout (idempotent: never overwrites what exists)."""
    progress = progress or NoProgress()
    log = get_logger()
    root = root.expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise InputError(f"{root} exists and is not a folder", hint="choose another workspace path")
    root.mkdir(parents=True, exist_ok=True)
    result = InitResult(workspace=root)
    env_file = root / ".env"
    if not env_file.exists():
        atomic_write_text(env_file, DEFAULT_ENV, file_mode=NEW_FILE_MODE)  # it will hold passwords: owner only
        result.created.append(".env")
    ws = load_workspace(root)
    for name in FOLDERS:
        folder = root / name
        if not folder.exists():
            folder.mkdir(parents=True, mode=PRIVATE_FOLDER_MODE if name in ("logs", "state") else 0o777)
            result.created.append(name + "/")
    attach_log_file(ws.logs, "init")
    library = ws.library_path
    if not library.exists():
        library.mkdir(parents=True, mode=0o755)
        result.created.append(str(library.relative_to(root)) + "/" if library.is_relative_to(root) else str(library))
    if sample:
        if any(library.iterdir()):
            log.info("init.sample_skipped", reason="library not empty", library=str(library))
            result.sample["library"] = "kept (not empty)"
        else:
            from mobius.workspace.sample import generate_library

            result.sample["library"] = generate_library(library, progress=progress)
    for step in _capability_steps():
        step(ws, result, sample=sample, progress=progress)
    make_private(ws)
    log.info("init.done", workspace=str(root), created=result.created, sample=sample)
    return ws, result


def _capability_steps() -> list:
    """What other capabilities add to a new workspace (database, game specs), in order."""
    from mobius.db.seed import init_step as init_database
    from mobius.ops.samples import init_sample_plan
    from mobius.workspace.sample_specs import init_game_specs

    return [init_database, init_game_specs, init_sample_plan]
