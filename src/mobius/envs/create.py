"""`env new NAME`: an environment with places of its own, ready for every `env`, `deploy` and `rollback` command.

The new environment's database, library and backups live under `environments/NAME/`. They are built
under `environments/.new-NAME/` and renamed into place; the settings file `environments/NAME.env`,
which is what makes the environment exist, is written last (atomically, mode 0600). A crash part-way
therefore leaves no half environment: only `.new-NAME/`, or a `NAME/` still holding the build marker,
which the next `env new NAME` removes before building again.
With `copy`, the database is copied by `db sync` (row counts compared) and the library by the media
migration (every byte re-read at the target); without it the database is an empty one at the newest
schema and the library an empty folder.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobius.config import ENVIRONMENTS_DIR, Settings, Workspace, environment_file, is_url, load_workspace
from mobius.errors import InputError
from mobius.records import records_call
from mobius.safety.atomic import atomic_write_text, fsync_dir
from mobius.safety.lock import FileLock

ENV_FILE_MODE = 0o600
BUILD_MARKER = ".mobius-env-new"  # in a places folder whose settings file is not written yet


@dataclass(frozen=True)
class NewEnvironment:
    """What `env new` made: the settings file, the three places, and what was copied into them."""

    name: str
    file: Path
    database_url: str
    library: Path
    backups: Path
    copied_rows: dict[str, int] | None = None
    copied_files: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "database_url": self.database_url,
                "library": self.library, "backups": self.backups, "copied_rows": self.copied_rows,
                "copied_files": self.copied_files}


def _settings_text(name: str) -> str:
    places = f"{ENVIRONMENTS_DIR}/{name}"
    return (f"# Environment {name}: its own database, library and backups (written by `mobius env new`).\n"
            f"# Relative paths resolve against the workspace folder.\n"
            f"MOBIUS_ENV={name}\n"
            f"MOBIUS_DATABASE_URL=sqlite:///{places}/mobius.db\n"
            f"MOBIUS_LIBRARY_DIR={places}/uploads\n"
            f"MOBIUS_BACKUP_DIR={places}/backups\n"
            f"# MOBIUS_SERVICE_URL=http://127.0.0.1:5001   (the health gate of deploy and rollback)\n")


def _private_workspace(source: Workspace, root: Path, database: Path, library: Path, backups: Path) -> Workspace:
    """A workspace that is not the user's: the copy's journal and settings switch stay inside `root`."""
    root.mkdir(parents=True, exist_ok=True)
    settings = Settings.read({"library_dir": source.library, "backup_dir": str(backups),
                              "database_url": f"sqlite:///{database}",
                              "s3_endpoint_url": source.settings.s3_endpoint_url}, environ={})
    return Workspace(root=root, settings=settings)


def create_environment(root: Path, name: str, *, copy: bool = False, progress: Any = None) -> NewEnvironment:
    """Create environment `name`; refuses a name in use. With `copy`, it starts as a verified copy of the workspace."""
    file = environment_file(root, name)
    with FileLock(root / "state" / f"env-new-{name}.lock", what=f"`env new {name}`"):
        return _create_locked(root, name, file, copy=copy, progress=progress)


def _create_locked(root: Path, name: str, file: Path, *, copy: bool, progress: Any) -> NewEnvironment:
    if file.exists():
        raise InputError(f"environment {name!r} already exists: {file}", hint="see `mobius env show " + name + "`")
    final = root / ENVIRONMENTS_DIR / name
    if (final / BUILD_MARKER).is_file():  # a crash after the rename, before the settings file: ours, unpublished
        shutil.rmtree(final)
    if final.exists():
        raise InputError(f"{final} already exists and is not an environment's places",
                         hint="move it away or choose another name")
    source = load_workspace(root)
    if copy and is_url(source.library):
        raise InputError(f"--copy copies a local library, and the workspace's library is {source.library}",
                         hint=f"create {name} without --copy, then set MOBIUS_LIBRARY_DIR in {file.name}")
    return _build(source, name, copy=copy, progress=progress)


@records_call("env.new")
def _build(ws: Workspace, name: str, *, copy: bool, progress: Any) -> NewEnvironment:
    """Build the environment's places and settings (recorded: `env.new`, with its name and --copy)."""
    from mobius.db import migrate_database, sync_databases
    from mobius.media import migrate

    source, root = ws, ws.root
    file = environment_file(root, name)
    final = root / ENVIRONMENTS_DIR / name
    building = root / ENVIRONMENTS_DIR / f".new-{name}"
    scratch = source.state / "envs" / f"new-{name}"
    shutil.rmtree(building, ignore_errors=True)  # a crashed `env new NAME` left it; nothing refers to it
    shutil.rmtree(scratch, ignore_errors=True)
    building.mkdir(parents=True)
    (building / BUILD_MARKER).write_text(f"{name}\n")
    database, library, backups = building / "mobius.db", building / "uploads", building / "backups"
    backups.mkdir()
    work = _private_workspace(source, scratch, database, library, backups)
    rows: dict[str, int] | None = None
    files: int | None = None
    try:
        if copy:
            rows = sync_databases(work, source.database_url, work.database_url, overwrite=True).tables
            files = migrate(work, str(library), backup=False, progress=progress).copied_files
        else:
            migrate_database(work, backup=False)
            library.mkdir()
    except BaseException:  # nothing refers to the partial build yet: leave nothing behind
        shutil.rmtree(building, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    database.chmod(0o600)  # it holds the environment's rows, like the workspace's own mobius.db
    fsync_dir(building)
    building.rename(final)
    fsync_dir(final.parent)
    shutil.rmtree(scratch, ignore_errors=True)
    file.parent.chmod(0o700)
    atomic_write_text(file, _settings_text(name), file_mode=ENV_FILE_MODE)
    (final / BUILD_MARKER).unlink()
    made = load_workspace(root, env=name)
    return NewEnvironment(name=name, file=file, database_url=made.database_url, library=Path(made.library),
                          backups=made.backups, copied_rows=rows, copied_files=files)
