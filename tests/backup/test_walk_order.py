"""The walk that scans folders ahead on threads lists exactly what, and in exactly the order, one thread does:
a snapshot taken with it is byte for byte the snapshot of the serial walk."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from backup_support import build_tree
from repository_support import age

from mobius.backup import tree as backup_tree
from mobius.backup.repository import Repository, write_snapshot_of
from mobius.backup.snapshot import read_entries
from mobius.safety.atomic import TEMP_PREFIX
from mobius.safety.tree import Entry, walk


def _wide_and_deep(root: Path) -> Path:
    """Folders of many sizes and depths, names whose sort order differs from their path order ('a' < 'a b' <
    'a-b' < 'a/...'), upper case, unicode, a temp leftover, links, empty folders."""
    build_tree(root)
    for top in ("a", "a b", "a-b", "A", "z", "ñ", "0"):
        for sub in range(3):
            folder = root / top / f"sub {sub}" / "deeper"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(40 if sub == 1 else 3):
                (folder.parent / f"f{i:02d}{'.png' if i % 2 else ''}").write_bytes(os.urandom(i))
            (folder / "leaf").write_bytes(b"x")
    (root / "a-b" / f"{TEMP_PREFIX}123-leftover").write_bytes(b"temp")
    os.symlink("../a/sub 0", root / "z" / "link to a")
    (root / "z" / "empty").mkdir()
    return root


@pytest.mark.parametrize("threads", [2, 8])
def test_threaded_walk_yields_the_serial_walk(tmp_path: Path, threads: int) -> None:
    root = _wide_and_deep(tmp_path / "library")
    serial = list(walk(root))
    assert len(serial) > 300
    assert list(walk(root, threads=threads)) == serial
    assert list(walk(root, threads=threads, include_temps=True)) == list(walk(root, include_temps=True))

    def skip(entry: Entry) -> bool:
        return entry.path in ("a b", "ñ/sub 1")

    pruned = list(walk(root, prune=skip))
    assert list(walk(root, threads=threads, prune=skip)) == pruned
    assert not any(e.path.startswith(("a b/", "ñ/sub 1")) for e in pruned)


def test_a_threaded_walk_stopped_early_leaves_no_thread_behind(tmp_path: Path) -> None:
    root = _wide_and_deep(tmp_path / "library")
    entries = walk(root, threads=4)
    first = [next(entries) for _ in range(5)]
    entries.close()
    assert first == list(walk(root))[:5]
    assert not [t for t in threading.enumerate() if t.name.startswith("walk")]


def test_snapshot_of_the_threaded_walk_is_byte_identical_to_the_serial_one(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root = _wide_and_deep(tmp_path / "library")
    age(root)
    lines = {}
    for threads in (1, 8):
        monkeypatch.setattr(backup_tree, "WALK_THREADS", threads)
        repo = Repository(tmp_path / f"backups-{threads}")
        made = write_snapshot_of(repo, root)
        lines[threads] = [entry.to_line() for entry in read_entries(made.path)]
    assert len(lines[1]) > 300 and lines[8] == lines[1]
