"""The check of a pack just written hashes each byte once (`check_pack(written=)`): a stored frame is held to its exact
layout and its blobs' sha256, the other bytes to the writer's digest of them. It must still find any byte that differs
from what was written, wherever it lies: a frame header, a raw block header, a tar header, padding, a blob, a zstd
frame, the tar's end."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from pathlib import Path

import pytest

from mobius.backup.frames import RAW_BLOCK, RAW_BLOCK_HEADER, STORED_HEADER_BYTES, STORED_SIGNATURE
from mobius.backup.pack import PackWriter, check_pack


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - a SealedPack
    """A plain pack with a stored frame of its own (a 300 KiB blob: three raw blocks), a stored group of small
    random blobs, a zstd group of text, and the tar's end."""
    folder = tmp_path_factory.mktemp("packs")
    writer = PackWriter(folder, direct=False)
    rng = random.Random(21)
    big = rng.randbytes(300_000)
    writer.add_stream(hashlib.sha256(big).hexdigest(), len(big), [big[:100_000], big[100_000:]])
    for i in range(6):
        data = rng.randbytes(20_000 + i)
        writer.add(hashlib.sha256(data).hexdigest(), data)
    writer._flush_group()  # the random blobs close their (stored) group before the text's
    for i in range(40):
        text = f"nigiri {i} maki roll pudding " .encode() * 200
        writer.add(hashlib.sha256(text).hexdigest(), text)
    writer.end()
    return writer.seal()


def _check(sealed, path: Path):  # noqa: ANN001, ANN202 - a PackCheck
    return check_pack(path, sealed.locations(), drop_cache=False, written=(sealed.name, sealed.outside))


def _failed(check, sealed) -> bool:  # noqa: ANN001
    return bool(check.damaged) or check.sha256 != sealed.name


def test_the_pack_as_written_passes_and_its_name_is_its_sha256(sealed) -> None:
    assert sealed.outside is not None
    assert hashlib.sha256(sealed.stored.read_bytes()).hexdigest() == sealed.name
    check = _check(sealed, sealed.stored)
    assert check.damaged == {} and check.sha256 == sealed.name and check.size == sealed.size
    # the whole-pack check (what `verify --read-data` does) agrees
    assert check_pack(sealed.stored, sealed.locations(), drop_cache=False).sha256 == sealed.name


def test_a_changed_byte_anywhere_fails_the_check(sealed, tmp_path: Path) -> None:
    data = sealed.stored.read_bytes()
    frames = sorted({(where[0], where[1]) for where in sealed.blobs.values()})
    stored = [(at, length) for at, length in frames if data[at:at + len(STORED_SIGNATURE)] == STORED_SIGNATURE]
    compressed = [(at, length) for at, length in frames if (at, length) not in stored]
    assert len(stored) == 2 and compressed, "the pack has both kinds of frame"
    positions = set()
    for at, length in stored:  # its header (the content size too) and every raw block header
        positions.update(range(at, at + STORED_HEADER_BYTES))
        block = at + STORED_HEADER_BYTES
        while block < at + length:
            positions.update(range(block, block + RAW_BLOCK_HEADER))
            block += RAW_BLOCK_HEADER + RAW_BLOCK
        positions.update(range(at + STORED_HEADER_BYTES + RAW_BLOCK_HEADER,  # the first tar header
                               at + STORED_HEADER_BYTES + RAW_BLOCK_HEADER + 512))
    for at, length in compressed:
        positions.update((at, at + length // 2, at + length - 1))
    end = max(at + length for at, length in frames)
    positions.update(range(end, len(data)))  # the tar's end
    positions.update(random.Random(5).sample(range(len(data)), 300))  # blobs, padding, anything
    copy = tmp_path / "pack"
    missed = []
    for position in sorted(positions):
        changed = bytearray(data)
        changed[position] ^= 0x01
        copy.write_bytes(changed)
        if not _failed(_check(sealed, copy), sealed):
            missed.append(position)
    assert missed == [], f"bytes changed at {missed[:10]} were not found"


def test_a_truncated_or_longer_pack_fails_the_check(sealed, tmp_path: Path) -> None:
    copy = tmp_path / "pack"
    shutil.copyfile(sealed.stored, copy)
    with open(copy, "ab") as handle:
        handle.write(b"\0")
    assert _failed(_check(sealed, copy), sealed)
    os.truncate(copy, sealed.size - 1)
    assert _failed(_check(sealed, copy), sealed)


@pytest.mark.parametrize("where", ["the tar's end", "a raw block header", "a stored tar header's unused byte",
                                   "a zstd frame"])
@pytest.mark.parametrize("index", ["this release's (with the outside digest)", "an earlier release's"])
def test_verify_read_data_finds_a_changed_byte_outside_any_blob(tmp_path: Path, where: str, index: str) -> None:
    """`backup verify --read-data` hashes each byte once where the index keeps the writer's digest; a byte changed
    where no blob lies is found either way (by that digest, or by the pack's sha256 for an earlier index)."""
    import json

    from mobius.backup.index import RepositoryIndex
    from mobius.backup.pack import pack_path
    from mobius.backup.repository import Repository, write_snapshot_of
    from mobius.backup.repository_check import check_snapshots

    library = tmp_path / "library"
    library.mkdir()
    rng = random.Random(8)
    (library / "clip.mp4").write_bytes(rng.randbytes(1_500_000))  # a stored frame of its own
    (library / "rules.txt").write_bytes(b"pass the cards to the left " * 4000)  # a zstd frame
    repo = Repository(tmp_path / "backups")
    write_snapshot_of(repo, library)
    assert check_snapshots(repo, read_data=True).ok
    (info,) = RepositoryIndex.load(repo.index).packs.values()
    if index.startswith("an earlier"):
        (path,) = repo.index.iterdir()
        record = json.loads(path.read_bytes())
        assert record.pop("outside") == info.outside
        path.write_text(json.dumps(record, separators=(",", ":")) + "\n")
    pack = pack_path(repo.packs, info.name)
    data = bytearray(pack.read_bytes())
    frames = sorted({(w.offset, w.length) for w in info.blobs.values()})
    stored = next(at for at, _ in frames if data[at:at + len(STORED_SIGNATURE)] == STORED_SIGNATURE)
    zstd = next(at for at, _ in frames if at != stored)
    tail = max(at + length for at, length in frames)  # the frame of the tar's end: in no blob's frame
    assert len(data) - tail > 8
    position = {"the tar's end": (tail + len(data)) // 2,
                "a raw block header": stored + STORED_HEADER_BYTES + RAW_BLOCK_HEADER + RAW_BLOCK + 1,
                "a stored tar header's unused byte": stored + STORED_HEADER_BYTES + RAW_BLOCK_HEADER + 400,
                "a zstd frame": zstd + 20}[where]
    data[position] ^= 0x01
    pack.chmod(0o600)
    pack.write_bytes(bytes(data))
    found = check_snapshots(repo, read_data=True)
    assert not found.ok, where
    assert info.name in "\n".join(found.problems), found.problems
