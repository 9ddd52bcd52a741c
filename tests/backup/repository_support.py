"""Helpers for the snapshot repository tests: restore a snapshot the way `backup restore` does, walk packs."""

from __future__ import annotations

import os
from pathlib import Path

from mobius.backup.export import exported
from mobius.backup.repository import Repository
from mobius.backup.restore import restore_archive
from mobius.backup.snapshot_restore import restore_snapshot_tree
from mobius.safety.atomic import TEMP_PREFIX


def restore_to(repo: Repository, snapshot_id: str, to: Path) -> Path:
    """Restore a snapshot's library into `to` straight from its packs (what `backup restore SNAPSHOT` does)."""
    restore_snapshot_tree(repo, snapshot_id, to)
    return to


def restore_via_export(repo: Repository, snapshot_id: str, to: Path) -> Path:
    """The same through a checked export and the archive restore (what test-restore does)."""
    with exported(repo, snapshot_id) as archive:
        restore_archive(archive, to)
    return to


def packs(repo: Repository) -> list[Path]:
    return sorted(repo.packs.rglob("*.tar.zst"))


def temp_files(repo: Repository) -> list[Path]:
    return [p for p in repo.root.rglob(f"{TEMP_PREFIX}*")]


def age(root: Path, seconds: int = 3600) -> None:
    """Move every mtime under `root` into the past, as a library that has not changed for a while."""
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 1_000_000_000), follow_symlinks=False)
