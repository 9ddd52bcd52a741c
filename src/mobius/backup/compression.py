"""How an archive's bytes are compressed: zstd or none, chosen per backup by measuring a sample.

Measured here (benchmarks/backup.py --codecs, docs/backup.md), 1 GiB each, in-process, 2 cores:
  incompressible media  zstd -3 ~2,350 MiB/s (ratio 1.001)  gzip -6 ~50 MiB/s (1.000)
  text + raw scans      zstd -3 ~260 MiB/s, with 2 workers ~520 MiB/s (ratio 0.22)
                        zstd -1 ~345 MiB/s (0.32)           gzip -6 ~24 MiB/s (0.20)
gzip is out. On media zstd saves nothing yet still costs a pass over every byte (about a third
of a backup's CPU on 2 cores), so `choose` compresses a sample of the files first: when zstd
would save under 10%, the archive is a plain `.tar`; otherwise `.tar.zst` at level 3 with zstd's
own worker threads (level 1 was ~30% faster but left half again as many bytes).

Readers recognise the codec by its magic bytes, not by the file name, so a `.tar.gz` from the
runbook's `tar -czf` restores like any other archive. No zstd frame checksum is written: the
archive's sha256 and every member's sha256 already cover the bytes.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Protocol

import zstandard

ZSTD_LEVEL = 3
ZSTD_THREADS = min(8, max(2, os.cpu_count() or 2))
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class RawSource(Protocol):
    def read(self, size: int) -> bytes | memoryview:
        """Up to `size` raw (compressed) bytes; empty at the end."""
        ...


class Decoder(Protocol):
    def read(self, size: int) -> bytes | memoryview:
        """Up to `size` decompressed bytes, never more (a zstd or gzip bomb cannot blow memory up)."""
        ...

    def readinto(self, buffer: bytearray) -> int:
        """Decompress into `buffer` (reused by the caller); 0 at the end."""
        ...

    @property
    def complete(self) -> bool:
        """The compressed stream did not end mid-frame (zstd: judged by the tar end marker instead)."""
        ...


@dataclass(frozen=True)
class Codec:
    name: str
    extension: str

    def compressor(self) -> Compressor:
        if self.name == "zstd":
            return zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=ZSTD_THREADS).compressobj()
        if self.name == "gzip":
            return zlib.compressobj(6, zlib.DEFLATED, 31)
        return _Identity()

    def decoder(self, source: RawSource) -> Decoder:
        if self.name == "zstd":
            return _ZstdDecoder(source)
        if self.name == "gzip":
            return _GzipDecoder(source)
        return _PlainDecoder(source)


ZSTD = Codec("zstd", ".tar.zst")
GZIP = Codec("gzip", ".tar.gz")
PLAIN = Codec("none", ".tar")
CODECS = {codec.name: codec for codec in (ZSTD, GZIP, PLAIN)}
DEFAULT = ZSTD
ARCHIVE_EXTENSIONS = (".tar.zst", ".tar.gz", ".tgz", ".tar")


SAMPLE_FILES = 64
SAMPLE_BYTES = 128 << 10
WORTH_IT = 0.9  # compress when a sample shrinks below 90%


class SpreadSample:
    """The files that hold byte 0, S, 2S, ... of the library (in walk order), picked while the tree is
    walked, with no second pass over the listing: S starts at 1 and doubles whenever 2 x `limit` files
    are held, keeping the ones that hold a multiple of the new S. So between `limit` and 2 x `limit`
    files, spread evenly by bytes whatever the total turns out to be."""

    def __init__(self, limit: int = SAMPLE_FILES):
        self.limit = limit
        self.step = 1
        self.seen = 0
        self._held: list[tuple[int, object]] = []  # (offset of the file's first byte, entry)

    @property
    def entries(self) -> list:
        return [entry for _, entry in self._held]

    def offer(self, entry) -> None:  # noqa: ANN001 - a ManifestEntry (manifest imports nothing from here)
        if entry.type != "file" or not entry.size:
            return
        start, self.seen = self.seen, self.seen + entry.size
        if _holds_multiple(start, self.seen, self.step):
            self._held.append((start, entry))
            while len(self._held) >= 2 * self.limit:
                self.step *= 2
                self._held = [(at, kept) for at, kept in self._held
                              if _holds_multiple(at, at + kept.size, self.step)]


def _holds_multiple(start: int, end: int, step: int) -> bool:
    """Whether the bytes [start, end) hold an offset that is a multiple of `step`."""
    return -(-start // step) * step < end


def choose(sample: list, local_path) -> tuple[Codec, float]:  # noqa: ANN001 - entries and a path function
    """zstd when the sampled files compress below WORTH_IT, else plain tar: (codec, sample ratio).

    Reads SAMPLE_BYTES from the middle of each sampled file (at most 2 x SAMPLE_FILES of them, 16 MiB).
    """
    raw = packed = 0
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    for entry in sample:
        try:
            with open(local_path(entry), "rb") as handle:
                handle.seek(max(0, entry.size // 2 - SAMPLE_BYTES // 2))
                data = handle.read(SAMPLE_BYTES)
        except OSError:
            continue
        raw += len(data)
        packed += len(compressor.compress(data))
    if not raw:
        return DEFAULT, 1.0
    ratio = packed / raw
    return (DEFAULT if ratio < WORTH_IT else PLAIN), round(ratio, 3)


def detect(head: bytes) -> Codec:
    """The codec of a stream, from its first bytes."""
    if head.startswith(ZSTD_MAGIC):
        return ZSTD
    if head.startswith(GZIP_MAGIC):
        return GZIP
    return PLAIN


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class _PlainDecoder:
    complete = True

    def __init__(self, source: RawSource):
        self.read = source.read


class _ZstdDecoder:
    """zstd across concatenated frames (the `zstd` CLI and pzstd write several), output bounded per read."""

    complete = True

    def __init__(self, source: RawSource):
        self._reader = zstandard.ZstdDecompressor().stream_reader(source, read_size=128 << 10,
                                                                  read_across_frames=True, closefd=False)

    def read(self, size: int) -> bytes:
        return self._reader.read(size)

    def readinto(self, buffer: bytearray) -> int:
        return self._reader.readinto(buffer)


class _GzipDecoder:
    """gzip across concatenated members (pigz and `cat a.gz b.gz` make several), output bounded per read."""

    def __init__(self, source: RawSource):
        self._source = source
        self._current = zlib.decompressobj(31)
        self._tail = b""
        self._started = False

    def read(self, size: int) -> bytes:
        while True:
            if self._current.eof:
                rest = self._current.unused_data
                if not rest:
                    rest = bytes(self._source.read(128 << 10))
                    if not rest:
                        return b""
                self._current = zlib.decompressobj(31)
                self._tail = rest
            data = self._tail or bytes(self._source.read(128 << 10))
            if not data:
                return b""
            self._started = True
            out = self._current.decompress(data, size)
            self._tail = self._current.unconsumed_tail
            if out:
                return out

    def readinto(self, buffer: bytearray) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    @property
    def complete(self) -> bool:
        return self._current.eof or not self._started
