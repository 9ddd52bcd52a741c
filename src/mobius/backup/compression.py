"""How an archive's bytes are compressed: zstd or none, chosen per backup by measuring a sample.

Measured here (benchmarks/backup.py --codecs, docs/backup.md), 1 GiB each, in-process:
  incompressible media  zstd -3 ~2,400 MiB/s (ratio 1.001)  gzip -6 ~44 MiB/s (1.000)
  text + raw scans      zstd -3 ~250 MiB/s (ratio 0.22)     gzip -6 ~24 MiB/s (0.20)
gzip is out. On media zstd saves nothing yet still costs a pass over every byte (about a third
of a backup's CPU on 2 cores), so `choose` compresses a sample of the files first: when zstd
would save under 10%, the archive is a plain `.tar`; otherwise `.tar.zst`, level 3 (level 1 was
~20% faster on text but left half again as many bytes). zstd's multithreaded mode lost to one stream on
its own thread (2 shared cores, with both sha256 streams running).

Readers recognise the codec by its magic bytes, not by the file name, so a `.tar.gz` from the
runbook's `tar -czf` restores like any other archive. No zstd frame checksum is written: the
archive's sha256 and every member's sha256 already cover the bytes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Protocol

import zstandard

ZSTD_LEVEL = 3
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class Decompressor(Protocol):
    def decompress(self, data: bytes) -> bytes: ...

    @property
    def complete(self) -> bool:
        """The compressed stream ended properly (not truncated)."""
        ...


@dataclass(frozen=True)
class Codec:
    name: str
    extension: str

    def compressor(self) -> Compressor:
        if self.name == "zstd":
            return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
        if self.name == "gzip":
            return zlib.compressobj(6, zlib.DEFLATED, 31)
        return _Identity()

    def decompressor(self) -> Decompressor:
        if self.name == "zstd":
            return _ZstdFrames()
        if self.name == "gzip":
            return _GzipMembers()
        return _Identity()


ZSTD = Codec("zstd", ".tar.zst")
GZIP = Codec("gzip", ".tar.gz")
PLAIN = Codec("none", ".tar")
CODECS = {codec.name: codec for codec in (ZSTD, GZIP, PLAIN)}
DEFAULT = ZSTD
ARCHIVE_EXTENSIONS = (".tar.zst", ".tar.gz", ".tgz", ".tar")


SAMPLE_FILES = 64
SAMPLE_BYTES = 128 << 10
WORTH_IT = 0.9  # compress when a sample shrinks below 90%


def choose(entries, local_path, total_bytes: int) -> tuple[Codec, float]:
    """zstd when a sample of the files compresses below WORTH_IT, else plain tar: (codec, sample ratio).

    Reads at most SAMPLE_FILES x SAMPLE_BYTES (8 MiB), from files spread evenly by bytes.
    """
    if total_bytes == 0:
        return DEFAULT, 1.0
    step = max(total_bytes // SAMPLE_FILES, 1)
    next_at, seen, raw, packed = 0, 0, 0, 0
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    for entry in entries:
        if entry.type != "file" or not entry.size:
            continue
        seen += entry.size
        if seen < next_at:
            continue
        next_at = seen + step
        try:
            with open(local_path(entry), "rb") as handle:
                handle.seek(max(0, entry.size // 2 - SAMPLE_BYTES // 2))
                data = handle.read(SAMPLE_BYTES)
        except OSError:
            continue
        raw += len(data)
        packed += len(compressor.compress(data))
    ratio = packed / raw if raw else 1.0
    return (DEFAULT if ratio < WORTH_IT else PLAIN), round(ratio, 3)


def detect(head: bytes) -> Codec:
    """The codec of a stream, from its first bytes."""
    if head.startswith(ZSTD_MAGIC):
        return ZSTD
    if head.startswith(GZIP_MAGIC):
        return GZIP
    return PLAIN


class _Identity:
    complete = True

    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""

    def decompress(self, data: bytes) -> bytes:
        return data


class _ZstdFrames:
    """zstd decompression across concatenated frames (`zstd` CLI and pzstd write several)."""

    def __init__(self) -> None:
        self._context = zstandard.ZstdDecompressor()
        self._current = self._context.decompressobj()
        self._pending = False

    def decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            if self._current.eof:
                self._current = self._context.decompressobj()
            out.append(self._current.decompress(data))
            self._pending = not self._current.eof
            data = self._current.unused_data if self._current.eof else b""
        return b"".join(out)

    @property
    def complete(self) -> bool:
        return not self._pending


class _GzipMembers:
    """gzip decompression across concatenated members (pigz and `cat a.gz b.gz` make several)."""

    def __init__(self) -> None:
        self._current = zlib.decompressobj(31)
        self._pending = False

    def decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            if self._current.eof:
                self._current = zlib.decompressobj(31)
            out.append(self._current.decompress(data))
            self._pending = not self._current.eof
            data = self._current.unused_data if self._current.eof else b""
        return b"".join(out)

    @property
    def complete(self) -> bool:
        return not self._pending
