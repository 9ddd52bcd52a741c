"""How a pack's zstd frames are encoded: chosen per frame from a probe of its first bytes.

Measured here (process CPU, 2 cores, 64 MiB in 1 MiB pieces):
  random bytes (jpg/png/mp4)            zstd -3 ~635 MiB/s, -1 ~2,650 MiB/s, both ratio 1.000
On media, level 3 spent more CPU than hashing the bytes and saved nothing. So each frame's first
PROBE bytes are compressed at level 1 (~25 us): bytes that do not shrink to STORE_ABOVE go into a
*stored* frame (zstd's raw blocks, written here at the cost of a copy, exactly what zstd itself
writes for bytes it cannot shrink); the rest get level 3, as before. (Level 1 for groups of small
files whose only shrinkable bytes are tar headers saved as much on one sample, but left a library of
100,000 small files 10% larger after 3 backups than level 3 did, past restic's: not taken.)

A stored frame is a standard zstd frame (RFC 8878 3.1.1): `zstd -dc` and every reader decode it.
It carries its content size (the decoder checks it) and no xxhash checksum: every blob's sha256,
tar header and padding are checked from the device before a pack is indexed, and the pack's sha256
is its name.
"""

from __future__ import annotations

from typing import Protocol

import zstandard

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
RAW_BLOCK = 128 << 10  # the largest block a 128 KiB window allows
PROBE = 64 << 10
STORE_ABOVE = 0.95  # a probe that keeps more than this: stored
PROBE_LEVEL = 1
LEVEL = 3
# Frame header descriptor: 8-byte content size, not single-segment, no checksum, no dictionary;
# window descriptor: 2^(10+7) = 128 KiB.
STORED_SIGNATURE = ZSTD_MAGIC + bytes([0xC0, 0x38])
STORED_HEADER_BYTES = len(STORED_SIGNATURE) + 8  # and the content size
RAW_BLOCK_HEADER = 3
_FULL_BLOCK = (RAW_BLOCK << 3).to_bytes(RAW_BLOCK_HEADER, "little")  # raw, not last


class FrameEncoder(Protocol):
    def compress(self, data: bytes | bytearray | memoryview) -> bytes: ...

    def flush(self) -> bytes: ...


class StoredFrame:
    """One zstd frame of raw blocks for exactly `content_size` bytes (the caller's promise; a mismatch
    raises at `flush`, before the frame could be written whole)."""

    def __init__(self, content_size: int):
        self.content_size = content_size
        self._seen = 0
        self._pending = bytearray()
        self._header = STORED_SIGNATURE + content_size.to_bytes(8, "little")

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        self._seen += len(data)
        if len(self._pending) + len(data) <= RAW_BLOCK:  # at least one byte stays for the last block
            self._pending += data
            return b""
        parts = [self._header]
        view = memoryview(data)
        if self._pending:
            fill = RAW_BLOCK - len(self._pending)
            parts += (_FULL_BLOCK, bytes(self._pending) + view[:fill])
            view = view[fill:]
            self._pending.clear()
        full = (len(view) - 1) // RAW_BLOCK * RAW_BLOCK
        for at in range(0, full, RAW_BLOCK):
            parts += (_FULL_BLOCK, view[at:at + RAW_BLOCK])
        self._pending += view[full:]
        self._header = b""
        return b"".join(parts)

    def flush(self) -> bytes:
        if self._seen != self.content_size:
            raise ValueError(f"a stored frame of {self.content_size} bytes was given {self._seen}")
        last = (len(self._pending) << 3 | 1).to_bytes(RAW_BLOCK_HEADER, "little")
        out = self._header + last + bytes(self._pending)
        self._header = b""
        self._pending.clear()
        return out


class FrameChooser:
    """Picks each frame's encoding from its first bytes; keeps one compressor per level (a context costs
    more to make than a probe)."""

    def __init__(self, *, checksum: bool = True):
        self._probe = zstandard.ZstdCompressor(level=PROBE_LEVEL)
        self._zstd = zstandard.ZstdCompressor(level=LEVEL, write_checksum=checksum)

    def kind(self, head: bytes | bytearray | memoryview) -> str:
        """'stored' or 'zstd' for a frame that starts with `head`."""
        sample = head[:PROBE]
        if not sample:
            return "zstd"
        return "stored" if len(self._probe.compress(sample)) / len(sample) > STORE_ABOVE else "zstd"

    def encoder(self, head: bytes | bytearray | memoryview, content_size: int) -> FrameEncoder:
        """An encoder for one frame of `content_size` bytes starting with `head`."""
        if self.kind(head) == "stored":
            return StoredFrame(content_size)
        return self._zstd.compressobj(size=content_size)

    def whole(self, data: bytes | bytearray | memoryview) -> bytes:
        """`data` as one frame."""
        frame = self.encoder(data, len(data))
        return frame.compress(data) + frame.flush()
