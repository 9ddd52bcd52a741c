"""The runbook's tar of tests/golden and its rollback, through the backup machinery (mobius.backup).

`backup_goldens` archives the whole golden tree into the workspace's backups folder as
`golden_<UTC stamp>.tar.zst` with a sha256 sidecar. `restore_goldens` verifies an archive, backs up
the goldens it is about to replace, extracts into a temp folder beside tests/golden and swaps it
in by rename, so a failed restore leaves the current goldens as they were.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

from mobius.config import Workspace
from mobius.errors import InputError
from mobius.golden.baseline import golden_lock, recover, swap_in
from mobius.log import get_logger
from mobius.progress import Progress
from mobius.records import records_call
from mobius.safety.atomic import TEMP_PREFIX
from mobius.safety.places import refuse_backups_in_library

PREFIX = "golden"
MEMBER_ROOT = "library"  # write_archive stores the source tree under this top folder



def has_goldens(ws: Workspace) -> bool:
    return ws.golden.is_dir() and any(p for p in ws.golden.iterdir() if not p.name.startswith("."))


@records_call("golden.backup", ref=lambda result: getattr(result, "path", None))
def backup_goldens(ws: Workspace, *, progress: Progress | None = None):
    """Archive tests/golden into backups/golden_<stamp>.tar.zst (+ .sha256); returns the backup result."""
    if not has_goldens(ws):
        raise InputError(f"no goldens to back up in {ws.golden}",
                         hint="approve a render first: `mobius golden approve`")
    from mobius.backup import write_archive  # imported here: `golden check` never needs it

    refuse_backups_in_library(ws.golden, ws.backups, what="goldens folder")
    result = write_archive(ws.golden, ws.backups, PREFIX, progress=progress)
    get_logger().info("golden.backup.done", archive=str(result.path), sha256=result.sha256)
    return result


LATEST = "latest"
ARCHIVE_NAME = re.compile(rf"^{PREFIX}_\d{{8}}T\d{{6}}Z\.tar(\.zst)?(\.age)?$")


def latest_golden_backup(ws: Workspace) -> Path:
    """The newest golden archive in the backups folder (names sort by their UTC stamp); InputError if none."""
    found = sorted(p for p in ws.backups.glob(f"{PREFIX}_*") if ARCHIVE_NAME.match(p.name)) \
        if ws.backups.is_dir() else []
    if not found:
        raise InputError(f"no golden backups in {ws.backups}", hint="`mobius golden backup` makes one")
    return found[-1]


@records_call("golden.restore")
def restore_goldens(ws: Workspace, archive: Path | str, *, progress: Progress | None = None) -> dict[str, object]:
    """Replace tests/golden with the archive's tree (or the newest golden backup for "latest"), after
    verifying it and backing up the current one."""
    archive = latest_golden_backup(ws) if str(archive) == LATEST else Path(archive).expanduser().resolve()
    if not archive.is_file():
        raise InputError(f"archive not found: {archive}", hint=f"list golden backups with `ls {ws.backups}`")
    if not archive.name.startswith(f"{PREFIX}_"):
        raise InputError(f"{archive.name} is not a golden backup (golden_<stamp>.tar.*)",
                         hint="`mobius golden backup` makes them; `mobius backup restore` restores the library")
    from mobius.backup import restore_archive, verify_archive

    verify_archive(archive).raise_if_failed()
    previous = backup_goldens(ws, progress=progress).path if has_goldens(ws) else None
    ws.golden.parent.mkdir(parents=True, exist_ok=True)
    staging = ws.golden.parent / f"{TEMP_PREFIX}{os.getpid()}-golden-restore-{secrets.token_hex(4)}"
    try:
        with golden_lock(ws):
            restore_archive(archive, staging, member_root=MEMBER_ROOT, progress=progress)
            if not staging.is_dir():
                staging.mkdir()
            recover(ws.golden)
            swap_in(staging, ws.golden)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    get_logger().info("golden.restore.done", archive=str(archive), previous=str(previous) if previous else None)
    return {"archive": archive, "restored_to": ws.golden, "previous_goldens_backup": previous,
            "games": sorted(p.name for p in ws.golden.iterdir() if p.is_dir() and not p.name.startswith("."))}
