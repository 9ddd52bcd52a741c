"""The compare step walks each tree once (issue 25): GNU find's output gives both the fingerprint and
the entry sums compared with the journal. Those sums must be exactly the ones the Python stat walk
makes, for every kind of entry and name, or a migration would refuse trees that agree (or, worse,
pass trees that differ); where find's output cannot be read, the Python walk takes over."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mobius.media import plan, treeprint
from mobius.safety.atomic import TEMP_PREFIX

pytestmark = pytest.mark.skipif(shutil.which("find") is None, reason="GNU find not installed")


def odd_tree(root: Path) -> Path:
    """Every kind of entry the walks must agree on, with names that break naive parsing."""
    (root / "sp ace" / "deep" / "er").mkdir(parents=True)
    (root / "sp ace" / "a b  c").write_bytes(b"x" * 10)
    (root / "sp ace" / "deep" / "er" / "leaf").write_bytes(b"")
    (root / "new\nline").write_bytes(b"y")
    (root / "café ü.bin").write_bytes(b"z" * 3000)
    os.symlink("../outside target", root / "sp ace" / "link with space")
    os.symlink("nowhere", root / "dangling")
    os.mkfifo(root / "a fifo")
    setuid = root / "setuid"
    setuid.write_bytes(b"s")
    os.chmod(setuid, 0o4755)
    sticky = root / "sticky dir"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    old = root / "before 1970"
    old.write_bytes(b"o")
    os.utime(old, ns=(-315_619_199_500_000_000, -315_619_199_500_000_000))  # 1960-01-01T00:00:00.5
    (root / os.fsdecode(b"latin1 \xe9")).write_bytes(b"l")  # not UTF-8: decoded as os.listdir does
    (root / f"{TEMP_PREFIX}left-by-a-kill").write_bytes(b"t")  # never part of either tree
    (root / "sp ace" / f"{TEMP_PREFIX}dir").mkdir()
    (root / "sp ace" / f"{TEMP_PREFIX}dir" / "inside").write_bytes(b"t")
    for i in range(300):  # enough output to span many reads when they are made tiny
        (root / "sp ace" / "deep" / f"file {i:03d} with a longer name to cross read boundaries").write_bytes(b"n")
    return root


@pytest.mark.parametrize("target", [False, True], ids=["source", "target"])
@pytest.mark.parametrize("ctimes", [False, True], ids=["no-ctimes", "ctimes"])
@pytest.mark.parametrize("read", [treeprint.READ, 7], ids=["1MiB-reads", "7-byte-reads"])
def test_one_find_walk_gives_the_sums_of_the_stat_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       target: bool, ctimes: bool, read: int):
    root = str(odd_tree(tmp_path / "tree"))
    monkeypatch.setattr(treeprint, "READ", read)  # entries split across reads, even inside a name
    by_stat = plan._scan_sum(root, target=target, ctimes=ctimes)
    by_find = plan.start_tree_sum(root, target=target, ctimes=ctimes)()
    assert by_find.fingerprint.startswith(treeprint.PREFIX)  # the find walk, not the fallback
    assert (by_find.total, by_find.files) == (by_stat.total, by_stat.files)
    assert by_find.files == 307  # temp names left out, the FIFO and links not files


def test_a_changed_ctime_changes_the_find_sum_as_it_changes_the_stat_sum(tmp_path: Path):
    root = odd_tree(tmp_path / "tree")
    before = plan.start_tree_sum(str(root), target=False, ctimes=True)()
    os.chmod(root / "setuid", 0o4755)  # same mode: only the ctime moves
    after_find = plan.start_tree_sum(str(root), target=False, ctimes=True)()
    after_stat = plan._scan_sum(str(root), target=False, ctimes=True)
    assert after_find.total != before.total and after_find.fingerprint != before.fingerprint
    assert after_find.total == after_stat.total


def test_find_output_that_does_not_parse_falls_back_to_the_python_walk(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    root = str(odd_tree(tmp_path / "tree"))
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "find").write_text("#!/bin/sh\nprintf 'f 644 1 not-a-time 1.0 1 x\\0\\0'\n")
    (fake / "find").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    by_stat = plan._scan_sum(root, target=True, ctimes=True)
    scan = plan.start_tree_sum(root, target=True, ctimes=True)()
    assert not scan.fingerprint.startswith(treeprint.PREFIX)
    assert (scan.total, scan.files, scan.fingerprint) == (by_stat.total, by_stat.files, by_stat.fingerprint)


def test_find_output_cut_inside_an_entry_gives_no_fingerprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "find").write_text("#!/bin/sh\nprintf 'f 644 1 1.0000000000 1.0000000000 1 x\\0'\n")  # no link field
    (fake / "find").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    seen: list = []
    assert treeprint.start_fingerprint(str(tmp_path), seen.extend)() is None
