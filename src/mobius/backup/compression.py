"""How an archive's bytes are compressed: zstd for new backups; gzip and plain tar still readable.

Chosen by measurement (benchmarks/backup.py, docs/backup.md): on incompressible media zstd
level 3 in-process runs at ~2.9 GB/s because it stores blocks it cannot shrink, where gzip -6
crawls at ~50 MB/s; zstd's multithreaded mode was slower here (2 shared cores), so one
in-process stream it is. Level 3 (zstd's default) costs little more than level 1 and shrinks
text-like data further. Readers recognise the codec by its magic bytes, not by the file name,
so a `.tar.gz` from the runbook's `tar -czf` restores like any other archive. No zstd frame
checksum is written: the archive's sha256 and every member's sha256 already cover the bytes.
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
