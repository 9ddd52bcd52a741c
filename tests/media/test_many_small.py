"""The many-small-files paths (issue 9): hashing split over processes, the stat-free listing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mobius.safety.atomic import TEMP_PREFIX
from mobius.safety.child import in_child
from mobius.safety.hashing import hash_many
from mobius.safety.tree import FILE, file_names, walk


def _fail(message: str) -> None:
    raise ValueError(message)


def test_in_child_returns_the_result_and_raises_the_childs_error():
    assert in_child(sum, [1, 2, 3])() == 6
    with pytest.raises(ValueError, match="boom"):
        in_child(_fail, "boom")()


def test_hash_many_keeps_order_stats_the_file_read_and_reports_unreadable(tmp_path: Path):
    paths = []
    for i in range(2500):  # enough for two parts: the second is hashed in a child process
        path = tmp_path / f"f{i:05d}"
        path.write_bytes(os.urandom(i % 97) * (i % 5))
        paths.append(str(path))
    paths.insert(7, str(tmp_path / "missing"))
    results = hash_many(paths, parts=2)
    assert len(results) == len(paths)
    assert results[7][0] is None and results[7][4]
    for path, (digest, size, mtime, inode, error) in zip(paths, results, strict=True):
        if path.endswith("missing"):
            continue
        st = os.stat(path)
        assert error is None and (size, mtime, inode) == (st.st_size, st.st_mtime_ns, st.st_ino)
        assert digest == hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_file_names_lists_what_walk_lists_without_links_or_temps(tmp_path: Path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a-c").write_text("x")
    (tmp_path / "a" / "b" / "deep").write_text("y")
    (tmp_path / "a" / "z").write_text("z")
    (tmp_path / "a" / f"{TEMP_PREFIX}123-x").write_text("temp")
    (tmp_path / "link").symlink_to(tmp_path / "a-c")
    (tmp_path / "dirlink").symlink_to(tmp_path / "a")
    expected = sorted(e.path for e in walk(tmp_path) if e.kind == FILE)
    assert file_names(tmp_path) == expected == ["a-c", "a/b/deep", "a/z"]
