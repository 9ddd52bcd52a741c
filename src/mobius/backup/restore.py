"""`restore`: a verified archive back into a folder, swapped in whole.

Restore verifies the whole archive first, then extracts into a temporary folder beside the
target (see extract.py), and only a complete, checked tree is swapped in by rename. An existing
target is moved aside to `<DIR>.rollback.<UTC stamp>`, never deleted (safety/swap: crash-safe).
The test restore (trial_restore.py) runs the same restore into a scratch folder.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobius.backup import catalog
from mobius.backup.extract import (
    STAGING_PREFIX,
    Staging,
    extract_member,
    extract_tree,
    refuse,
    remove_stale_staging,
    safe_mode,
)
from mobius.backup.manifest import LIBRARY_ROOT
from mobius.backup.member_index import MemberIndex
from mobius.backup.member_rules import normalize
from mobius.backup.verify import VerifyReport, scan
from mobius.errors import InputError
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress
from mobius.safety.atomic import sync_filesystem
from mobius.safety.diskspace import require_free_space
from mobius.safety.leftovers import scratch_name
from mobius.safety.swap import swap_folder


@dataclass
class ArchiveRestore:
    """A restored folder; `rollback` is where the previous content went (None when there was none)."""

    archive: Path
    to: Path
    rollback: Path | None
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    seconds: float = 0.0
    has_manifest: bool = True
    member_root: str = LIBRARY_ROOT
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"archive": self.archive, "to": self.to, "rollback": self.rollback, "files": self.files,
                "dirs": self.dirs, "symlinks": self.symlinks, "bytes": self.bytes,
                "seconds": round(self.seconds, 3), "has_manifest": self.has_manifest,
                "member_root": self.member_root, "notes": self.notes}


def _root_for(report: VerifyReport, index: MemberIndex, member_root: str) -> str:
    member_root = normalize(member_root)
    if not report.has_manifest and member_root == LIBRARY_ROOT and report.root != LIBRARY_ROOT:
        return report.root
    table = "expected" if report.has_manifest else "seen"
    if member_root and index.db.execute(f"SELECT 1 FROM {table} WHERE path=? OR (path>=? AND path<?) LIMIT 1",
                                        (member_root.encode(), (member_root + "/").encode(),
                                         (member_root + "0").encode())).fetchone() is None:
        raise InputError(f"{report.path.name} holds nothing under '{member_root}/'",
                         hint="choose another member root; `tar -tf` lists what the archive holds")
    return member_root


def restore_tree(path: Path, to: Path, member_root: str, progress: Progress | None
                 ) -> tuple[ArchiveRestore, VerifyReport, MemberIndex]:
    """Verify, extract into staging beside `to`, swap in; the caller closes the returned index."""
    progress = progress or NoProgress()
    started = time.monotonic()
    path = Path(path).expanduser().resolve()
    to = Path(to).expanduser()
    to = to.parent.resolve() / to.name if to.name else to.resolve()
    if to.exists() and not to.is_dir():
        raise InputError(f"{to} exists and is not a folder", hint="choose a folder to restore into")
    report, index = scan(path, progress)
    try:
        if not report.ok:
            raise refuse(report)
        root = _root_for(report, index, member_root)
        to.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(to.parent)
        require_free_space(to.parent, report.bytes, what=f"restoring {path.name} into {to}")
        result = ArchiveRestore(archive=path, to=to, rollback=None, has_manifest=report.has_manifest,
                               member_root=root, notes=list(report.notes))
        staging = Staging(to.parent, to.name)
        try:
            with tempfile.TemporaryDirectory(prefix=scratch_name("restore")) as scratch:
                counts = extract_tree(path, report, index, root, staging, Path(scratch), progress)
            result.files, result.dirs, result.symlinks, result.bytes = (counts.files, counts.dirs, counts.symlinks,
                                                                        counts.bytes)
            if not sync_filesystem(staging.path):  # the staged tree's file system only
                os.sync()
            result.rollback = _swap(staging, to)
        except BaseException:
            staging.remove()
            raise
        staging.close()
    except BaseException:
        index.close()
        raise
    result.seconds = time.monotonic() - started
    return result, report, index


def _swap(staging: Staging, to: Path) -> Path | None:
    """Put the staged tree at `to`; whatever was there moves to `<to>.rollback.<stamp>` (crash-safe swap)."""
    return swap_folder(staging.path, to)


def restore_archive(path: Path, to: Path, *, member_root: str = LIBRARY_ROOT,
                    progress: Progress | None = None) -> ArchiveRestore:
    """Verify `path`, then restore its `member_root/` tree as folder `to` (previous content kept as a rollback)."""
    result, _report, index = restore_tree(path, to, member_root, progress)
    index.close()
    catalog.append_event(result.archive, {"event": "backup.restored", **result.to_dict()})
    get_logger().info("backup.restore.done", archive=str(result.archive), to=str(result.to),
                      rollback=str(result.rollback) if result.rollback else None, files=result.files)
    return result


# extract_member, safe_mode, STAGING_PREFIX and remove_stale_staging live in extract.py; still importable from here
__all__ = ["STAGING_PREFIX", "ArchiveRestore", "extract_member", "remove_stale_staging", "restore_archive",
           "restore_tree", "safe_mode"]
