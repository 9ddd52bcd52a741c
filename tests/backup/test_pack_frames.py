"""Pack frames: stored frames (raw zstd blocks, for bytes zstd cannot shrink) decode with the zstd CLI and
with every reader, read straight from their blocks; a frame with a stored frame's header but another kind
of block is still decoded right; each frame's encoding is chosen by what its bytes are."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest
import zstandard

from mobius.backup.frames import RAW_BLOCK, STORED_SIGNATURE, FrameChooser, StoredFrame
from mobius.backup.pack import DeviceFile, PackDamaged, _frame_chunks


def _stored(data: bytes, rng: random.Random) -> bytes:
    frame = StoredFrame(len(data))
    out = bytearray()
    at = 0
    while at < len(data):
        step = rng.choice([1, 100, RAW_BLOCK - 1, RAW_BLOCK, RAW_BLOCK + 1, 1 << 20, rng.randint(1, 400_000)])
        out += frame.compress(data[at:at + step])
        at += step
    return bytes(out + frame.flush())


def _read(path: Path, offset: int, length: int) -> tuple[bytes, bytes]:
    """(decoded bytes, every raw byte the reader reported) of the frame at [offset, offset + length), read from
    the device (O_DIRECT, through one reused buffer) and read plainly: both the same."""
    results = []
    for from_device in (True, False):
        seen = bytearray()
        with DeviceFile(path, from_device=from_device) as pack:
            results.append((b"".join(_frame_chunks(pack.read, offset, length, seen.extend)), bytes(seen)))
    assert results[0] == results[1]
    return results[0]


@pytest.mark.parametrize("size", [1, 5, RAW_BLOCK - 1, RAW_BLOCK, RAW_BLOCK + 1, 2 * RAW_BLOCK, 9_000_001])
def test_a_stored_frame_decodes_with_the_zstd_cli_and_from_its_raw_blocks(size: int, tmp_path: Path) -> None:
    data = os.urandom(size)
    frame = _stored(data, random.Random(size))
    assert subprocess.run(["zstd", "-dc"], input=frame, capture_output=True, check=True).stdout == data
    assert zstandard.ZstdDecompressor().decompressobj().decompress(frame) == data
    path = tmp_path / "pack"
    path.write_bytes(b"before" + frame + b"after")
    decoded, raw = _read(path, 6, len(frame))
    assert decoded == data and raw == frame


def test_a_stored_frame_refuses_more_or_fewer_bytes_than_promised() -> None:
    frame = StoredFrame(10)
    frame.compress(b"x" * 9)
    with pytest.raises(ValueError):
        frame.flush()


def test_a_frame_with_the_stored_header_and_a_block_that_is_not_raw_is_decoded_by_zstd(tmp_path: Path) -> None:
    raw_block = ((5 << 3) | 0).to_bytes(3, "little") + b"hello"
    rle_block = ((100_000 << 3) | (1 << 1) | 1).to_bytes(3, "little") + b"x"  # 100,000 times "x", last
    frame = STORED_SIGNATURE + (100_005).to_bytes(8, "little") + raw_block + rle_block
    assert zstandard.ZstdDecompressor().decompressobj().decompress(frame) == b"hello" + b"x" * 100_000
    path = tmp_path / "pack"
    path.write_bytes(frame)
    decoded, raw = _read(path, 0, len(frame))
    assert decoded == b"hello" + b"x" * 100_000 and raw == frame


def test_a_truncated_stored_frame_is_damage(tmp_path: Path) -> None:
    frame = _stored(os.urandom(500_000), random.Random(1))
    path = tmp_path / "pack"
    path.write_bytes(frame[:-10])
    with pytest.raises(PackDamaged):
        _read(path, 0, len(frame))
    damaged = bytearray(frame)
    damaged[len(STORED_SIGNATURE) + 8] |= 0b110  # the first block's type: reserved
    path.write_bytes(damaged)
    with pytest.raises(PackDamaged):
        _read(path, 0, len(frame))
    damaged = bytearray(frame)
    damaged[len(STORED_SIGNATURE) + 8] ^= 0b1000  # the first block's size: one byte more
    path.write_bytes(damaged)
    with pytest.raises(PackDamaged):
        _read(path, 0, len(frame))


def test_each_frame_is_encoded_by_what_its_bytes_are() -> None:
    chooser = FrameChooser()
    assert chooser.kind(os.urandom(100_000)) == "stored"
    assert chooser.kind(b"".join(bytes(512) + os.urandom(2000) for _ in range(40))) == "zstd"  # headers shrink
    assert chooser.kind(b"card sushi nigiri " * 10_000) == "zstd"
    for data in (os.urandom(300_000), b"card sushi nigiri " * 10_000):
        assert zstandard.ZstdDecompressor().decompressobj().decompress(chooser.whole(data)) == data
