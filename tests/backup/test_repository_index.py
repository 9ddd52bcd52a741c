"""The compact in-memory index reads exactly as the per-blob table it replaced, from the same index files."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from repository_support import age, packs, restore_to

from mobius.backup.index import PackBlobs, RepositoryIndex, index_path, write_index
from mobius.backup.pack import BlobLocation, PackInfo, PackWriter
from mobius.backup.repository import Repository, write_snapshot_of


def _written_pack(folder: Path, blobs: list[bytes]) -> PackInfo:
    writer = PackWriter(folder / "packs")
    for data in blobs:
        sha = hashlib.sha256(data).hexdigest()
        if len(data) > 1 << 20:
            writer.add_stream(sha, len(data), [data])
        else:
            writer.add(sha, data)
    return writer.finish()


def _old_reading(path: Path) -> dict[str, BlobLocation]:
    """How an index file was read before the compact index: one BlobLocation per blob."""
    record = json.loads(path.read_bytes())
    return {sha: BlobLocation(record["pack"], offset, length, skip, size)
            for sha, offset, length, skip, size in record["blobs"]}


def test_compact_index_answers_as_the_old_per_blob_table(tmp_path: Path) -> None:
    contents = [os.urandom(n) for n in (0, 1, 511, 512, 4096, 300_000, 2 << 20, 700)]
    first = _written_pack(tmp_path, contents)
    second = _written_pack(tmp_path, [contents[3], os.urandom(1000)])  # one blob held in two packs
    old_dict = dict(first.blobs)
    for info in (first, second):
        write_index(tmp_path / "index", info)
    index = RepositoryIndex.load(tmp_path / "index")
    old = {info.name: _old_reading(index_path(tmp_path / "index", info.name)) for info in (first, second)}
    expected = {**old[second.name], **old[first.name]}
    assert len(index) == len(expected) == len(contents) + 1
    for sha in expected:
        found = index.get(sha)  # a blob in two packs: either serves, as before
        assert sha in index and found is not None and found == old[found.pack][sha]
        assert index.pack_of(sha) == found.pack
    table = index.packs[first.name].blobs
    assert isinstance(table, PackBlobs) and dict(table.items()) == old_dict
    assert sorted(table) == sorted(old_dict) and all(sha in table for sha in old_dict)
    assert table[next(iter(old_dict))] == old_dict[next(iter(old_dict))]
    for hostile in ("", "zz" * 32, "ab", "a" * 63, hashlib.sha256(b"absent").hexdigest(), "é" * 64):
        assert hostile not in index and index.get(hostile) is None and hostile not in table
        assert index.pack_of(hostile) is None


def test_an_index_file_is_written_byte_for_byte_as_before(tmp_path: Path) -> None:
    """As before, with the writer's digest of the bytes outside stored frames ("outside", stop 28) after
    "raw_bytes"; a pack without it (an earlier release's, read back) is written exactly as before."""
    info = _written_pack(tmp_path, [os.urandom(100), os.urandom(3000)])
    assert info.outside is not None and len(info.outside) == 64
    rows = [where.as_row(sha) for sha, where in sorted(info.blobs.items(), key=lambda kv: kv[1].offset)]
    head = {"format": "mobius-pack-index", "version": 1, "pack": info.name, "size": info.size,
            "raw_bytes": info.raw_bytes}
    now = json.dumps({**head, "outside": info.outside, "blobs": rows}, separators=(",", ":")) + "\n"
    assert write_index(tmp_path / "index", info).read_text() == now
    compact = RepositoryIndex.load(tmp_path / "index").packs[info.name]
    assert compact.outside == info.outside
    (tmp_path / "again").mkdir()
    assert write_index(tmp_path / "again", compact).read_text() == now
    before = json.dumps({**head, "blobs": rows}, separators=(",", ":")) + "\n"
    (tmp_path / "old").mkdir()
    assert write_index(tmp_path / "old", dataclasses.replace(compact, outside=None)).read_text() == before


def test_a_repository_written_by_the_previous_code_restores(tree: Path, tmp_path: Path) -> None:
    """Index files as the per-blob code wrote them (rows in pack order, JSON) are what the compact index reads."""
    age(tree)
    repo = Repository(tmp_path / "backups")
    made = write_snapshot_of(repo, tree)
    for path in repo.index.iterdir():  # rewrite every index file the way the old writer formatted it
        record = json.loads(path.read_bytes())
        path.write_text(json.dumps(record, separators=(",", ":")) + "\n")
    again = write_snapshot_of(repo, tree)
    assert (again.new_files, again.reused_files) == (0, made.files)
    restored = restore_to(repo, again.id, tmp_path / "restored")
    assert sorted(p.name for p in restored.rglob("*")) == sorted(p.name for p in tree.rglob("*"))


def test_a_pack_whose_index_file_is_damaged_is_not_swept_as_an_orphan(tree: Path, tmp_path: Path) -> None:
    """Before: the next create's cleanup took a pack with an unparsable index file for an orphan and deleted it
    (the only copy of its content); now only packs with no index file at all are orphans."""
    repo = Repository(tmp_path / "backups")
    write_snapshot_of(repo, tree)
    (pack,) = packs(repo)
    index_path(repo.index, pack.name.removesuffix(".tar.zst")).write_text("{damaged")
    other = tmp_path / "other"
    other.mkdir()
    (other / "card.png").write_bytes(os.urandom(1000))
    write_snapshot_of(repo, other)  # its cleanup runs alone, and its own pack has another name
    assert pack.is_file() and len(packs(repo)) == 2
