"""A repeat backup reads the parent snapshot's lines alongside the new listing (backup/parent.py): an unchanged
file takes the parent's line as it is, anything else is read. A parent in another order, damaged, or naming
a blob the index lacks may cost reads, never a wrong line."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from repository_support import age

from mobius.backup.index import index_files
from mobius.backup.manifest import ManifestEntry
from mobius.backup.parent import walk_key
from mobius.backup.repository import Repository, write_snapshot_of
from mobius.backup.snapshot import read_entries
from mobius.backup.tree import Listing, _manifest_entry, walk_tree
from mobius.safety.tree import walk

ODD_NAMES = ["a", "a b", "a.b", "a-b", "a\\b", 'q"uote', "é-accent", "日本", "line\nbreak", "z", "A", "0"]


def _library(root: Path) -> Path:
    folders = ["", "a", "a.b", "a/b", "a/b/c", "a b", 'q"uote', "é-accent"]
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    for folder in folders:
        for name in ODD_NAMES:
            if not (root / folder / name).exists():
                (root / folder / name).write_bytes(f"{folder}/{name}".encode())
    os.mkdir(os.path.join(os.fsencode(root), b"latin1-\xe9t\xe9"))  # not UTF-8
    (root / os.fsdecode(b"latin1-\xe9t\xe9") / "inside").write_bytes(b"x")
    (root / "link").symlink_to("a b")
    age(root)
    return root


def _lines(repo: Repository, snapshot_id: str) -> list[tuple]:
    """Every entry, as the snapshot says (path, type, size, mode, mtime, target, sha256, ino, ctime)."""
    return [(e.path, e.type, e.size, e.mode, e.mtime_ns, e.target, e.sha256, e.ino, e.ctime_ns)
            for e in read_entries(repo.snapshot_file(snapshot_id))]


def test_walk_key_sorts_entries_as_the_walk_lists_them(tmp_path: Path) -> None:
    library = _library(tmp_path / "library")
    paths = [entry.path for entry in walk(library)]
    assert sorted(paths, key=walk_key) == paths


def test_a_repeat_after_files_came_and_went_reads_only_those_and_writes_what_a_full_read_writes(
        tmp_path: Path) -> None:
    library = _library(tmp_path / "library")
    repo = Repository(tmp_path / "backups")
    first = write_snapshot_of(repo, library)
    assert first.read_files == first.files
    (library / "a" / "a.b").unlink()  # gone
    (library / "a" / "b" / "new").write_bytes(b"new file")  # new, between known ones
    (library / "a b" / "fresh").mkdir()  # a new folder with a file
    (library / "a b" / "fresh" / "x").write_bytes(b"fresh x")
    (library / "a" / "z").write_bytes(b"other bytes")  # changed
    (library / "0").unlink()
    (library / "0").mkdir()  # a file became a folder
    (library / "0" / "in").write_bytes(b"in")
    for path in ("a/b/new", "a b/fresh", "a/z", "0"):
        age(library / path)
    again = write_snapshot_of(repo, library)
    assert (again.read_files, again.new_files) == (4, 4)
    assert again.reused_files == again.files - 4
    forced = write_snapshot_of(repo, library, force_read=True)
    assert _lines(repo, again.id) == _lines(repo, forced.id)
    for path, kind, _, _, _, _, sha, _, _ in _lines(repo, again.id):
        if kind == "file":
            local = os.path.join(os.fsencode(library), os.fsencode(path.partition("/")[2]))
            assert sha == hashlib.sha256(Path(os.fsdecode(local)).read_bytes()).hexdigest(), path


def _rewrite_body(repo: Repository, snapshot_id: str, change) -> None:  # noqa: ANN001
    """Rewrite a snapshot's entry lines with `change` and give it a valid checksum again (a parent written by
    another version, say, not a damaged one)."""
    path = repo.snapshot_file(snapshot_id)
    lines = path.read_bytes().splitlines(keepends=True)
    head, body = lines[0], change(lines[1:-1])
    digest = hashlib.sha256(head + b"".join(body)).hexdigest()
    path.write_bytes(head + b"".join(body) + (json.dumps({"end": digest}) + "\n").encode())


def test_a_parent_in_another_order_costs_reads_never_a_wrong_line(tmp_path: Path) -> None:
    library = _library(tmp_path / "library")
    repo = Repository(tmp_path / "backups")
    first = write_snapshot_of(repo, library)
    _rewrite_body(repo, first.id, lambda body: body[:1] + list(reversed(body[1:])))
    (library / "a" / "z").write_bytes(b"changed")
    age(library / "a" / "z")
    again = write_snapshot_of(repo, library)
    assert again.parent == first.id and 0 < again.read_files <= again.files
    forced = write_snapshot_of(repo, library, force_read=True)
    assert _lines(repo, again.id) == _lines(repo, forced.id)


def test_a_parent_line_that_differs_in_mode_or_spells_its_sha256_otherwise_is_not_copied(tmp_path: Path) -> None:
    library = _library(tmp_path / "library")
    repo = Repository(tmp_path / "backups")
    first = write_snapshot_of(repo, library)
    sha_of = {e.path: e.sha256 for e in read_entries(repo.snapshot_file(first.id))}

    def edited(body: list[bytes]) -> list[bytes]:
        out = []
        for line in body:
            if b'"path":"library/a b/z"' in line:
                line = line.replace(b'"mode":420,', b'"mode":384,')
            if b'"path":"library/a b/a"' in line:
                line = line.replace(sha_of["library/a b/a"].encode(), sha_of["library/a b/a"].upper().encode())
            out.append(line)
        return out

    _rewrite_body(repo, first.id, edited)
    again = write_snapshot_of(repo, library)
    assert again.read_files == 0 and again.reused_files == again.files  # both looked up by path, not read
    entries = {e[0]: e for e in _lines(repo, again.id)}
    assert entries["library/a b/z"][3] == 0o644
    assert {path: entry[6] for path, entry in entries.items()} == sha_of


def test_a_damaged_parent_is_not_trusted(tmp_path: Path) -> None:
    library = _library(tmp_path / "library")
    repo = Repository(tmp_path / "backups")
    first = write_snapshot_of(repo, library)
    path = repo.snapshot_file(first.id)
    data = path.read_bytes()
    at = data.index(b'"sha256":"') + len(b'"sha256":"')
    path.write_bytes(data[:at] + (b"0" if data[at:at + 1] != b"0" else b"1") + data[at + 1:])
    again = write_snapshot_of(repo, library)
    assert again.parent is None and again.read_files == again.files


def test_a_blob_the_index_lacks_is_read_again(tmp_path: Path) -> None:
    library = _library(tmp_path / "library")
    repo = Repository(tmp_path / "backups")
    first = write_snapshot_of(repo, library)
    for path in index_files(repo.index):
        path.unlink()
    again = write_snapshot_of(repo, library)
    assert again.parent == first.id and again.read_files == again.files and again.new_files == again.files
    assert _lines(repo, again.id) == _lines(repo, first.id)


def test_a_snapshot_listing_writes_each_file_as_its_manifest_line_with_the_identity(tmp_path: Path) -> None:
    """`Listing.add_file` formats a file's line in one step: the same bytes as `add` (which the parent's lines,
    compared byte for byte, were written from)."""
    library = _library(tmp_path / "library")
    fast = walk_tree(library, Listing(tmp_path / "fast.jsonl", identities=True))
    slow = Listing(tmp_path / "slow.jsonl", identities=True)
    with open(slow.path, "w", encoding="utf-8") as out:
        slow.add(ManifestEntry("library", "dir", 0, stat.S_IMODE(library.stat().st_mode), library.stat().st_mtime_ns),
                 out)
        for item in walk(library):
            slow.add(_manifest_entry(f"library/{item.path}", item), out, item.inode, item.ctime_ns)
    assert fast.path.read_bytes() == slow.path.read_bytes()
    assert (fast.entries, fast.files, fast.bytes) == (slow.entries, slow.files, slow.bytes)
    assert b'"type":"file"' in fast.path.read_bytes() and b'\\"' in fast.path.read_bytes()
