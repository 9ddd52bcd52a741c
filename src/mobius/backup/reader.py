"""Reading an archive in one pass: the raw bytes hashed (for the sidecar) as they are decompressed.

A reader thread reads and hashes the file while the caller's thread decompresses, parses tar
headers and hashes members, so the two sha256 streams run on two cores. tarfile only parses
headers here (stream mode); what to do with each member is decided by the caller.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import tarfile
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import zstandard

from mobius.backup.compression import Codec, Decompressor, detect
from mobius.progress import NoProgress, Progress

RAW_CHUNK = 4 << 20
DATA_CHUNK = 1 << 20
DECODE_ERRORS = (zstandard.ZstdError, zlib.error, tarfile.TarError, EOFError, UnicodeError)


class ArchiveDamaged(Exception):
    """The stream cannot be read past this point (corrupt compressed data or tar structure)."""


class _RawHashingReader:
    def __init__(self, path: Path, progress: Progress):
        self._fd = os.open(path, os.O_RDONLY)
        self.digest = hashlib.sha256()
        self.size = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._stop = False
        self._error: BaseException | None = None
        self._progress = progress
        self._thread = threading.Thread(target=self._run, name="archive-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop:
                data = os.read(self._fd, RAW_CHUNK)
                if not data:
                    break
                self.digest.update(data)
                self.size += len(data)
                self._queue.put(data)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            self._error = exc
        finally:
            self._queue.put(None)

    def get(self) -> bytes | None:
        data = self._queue.get()
        if data is None:
            self._queue.put(None)
            if self._error is not None:
                raise self._error
        else:
            self._progress.advance(len(data))
        return data

    def close(self) -> None:
        self._stop = True
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.1)
        os.close(self._fd)


class _DecompressedStream:
    """A read-only file object over the decompressed bytes, for tarfile's stream mode."""

    def __init__(self, raw: _RawHashingReader):
        self._raw = raw
        self._buffer = bytearray()
        self._eof = False
        first = raw.get() or b""
        self.codec: Codec = detect(first)
        self._decompressor: Decompressor = self.codec.decompressor()
        self._feed(first)

    def _feed(self, data: bytes | None) -> None:
        if data is None:
            self._eof = True
        elif data:
            self._buffer += self._decompressor.decompress(data)

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._buffer) < size):
            self._feed(self._raw.get())
        if size < 0 or size >= len(self._buffer):
            out = bytes(self._buffer)
            self._buffer.clear()
        else:
            out = bytes(self._buffer[:size])
            del self._buffer[:size]
        return out

    def drain(self) -> bool:
        """Decompress what is left (checks the codec's own end and checksum); True when it ended properly."""
        while not self._eof:
            self._feed(self._raw.get())
            self._buffer.clear()
        return self._decompressor.complete


class ArchiveReader:
    """`with ArchiveReader(path) as reader: for info in reader.members(): ... reader.chunks(info)`; then finish()."""

    def __init__(self, path: Path, progress: Progress | None = None):
        self.path = Path(path)
        self._progress = progress or NoProgress()
        self.current: str | None = None
        self.damaged = False

    def __enter__(self) -> ArchiveReader:
        self._progress.start(f"read {self.path.name}", total=os.path.getsize(self.path), unit="bytes")
        self._raw = _RawHashingReader(self.path, self._progress)
        try:
            self._stream = _DecompressedStream(self._raw)
        except DECODE_ERRORS as exc:
            self.damaged = True
            self._damage = str(exc)
            self._stream = None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._raw.close()
        self._progress.finish()

    @property
    def codec(self) -> str:
        return self._stream.codec.name if self._stream else "unknown"

    def members(self) -> Iterator[tarfile.TarInfo]:
        """Each member header in order; raises ArchiveDamaged where the stream stops making sense."""
        if self._stream is None:
            raise ArchiveDamaged(self._damage)
        try:
            self._tar = tarfile.open(fileobj=self._stream, mode="r|", bufsize=DATA_CHUNK,  # noqa: SIM115
                                     encoding="utf-8", errors="surrogateescape")
            for info in self._tar:
                self.current = info.name
                yield info
        except DECODE_ERRORS as exc:
            self.damaged = True
            raise ArchiveDamaged(_describe(exc)) from None

    def chunks(self, info: tarfile.TarInfo) -> Iterator[bytes]:
        """The data of the member `members()` just yielded, in pieces."""
        try:
            handle = self._tar.extractfile(info)
            if handle is None:
                return
            while chunk := handle.read(DATA_CHUNK):
                yield chunk
        except DECODE_ERRORS as exc:
            self.damaged = True
            raise ArchiveDamaged(_describe(exc)) from None

    def finish(self) -> tuple[str, int, bool]:
        """Read to the end of the file: (sha256 of the whole file, its size, compressed stream complete)."""
        complete = False
        if self._stream is not None and not self.damaged:
            try:
                complete = self._stream.drain()
            except DECODE_ERRORS:
                complete = False
                self.damaged = True
        while self._raw.get() is not None:
            pass
        return self._raw.digest.hexdigest(), self._raw.size, complete


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return "unexpected end of data (truncated)" if "unexpected end" in text else text
