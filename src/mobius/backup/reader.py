"""Reading an archive in one pass: the raw bytes hashed (for the sidecar) as they are decompressed.

A reader thread reads and hashes the file while the caller's thread decompresses, parses tar
headers and hashes members, so the two sha256 streams run on two cores. tarfile only parses
headers here; member data is never copied on its way to the caller's hash (tarfile's own stream
mode copied every byte three times and was the largest cost of a verify).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import stat
import tarfile
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import zstandard

from mobius.backup.buffers import BufferPool
from mobius.backup.compression import Codec, Decoder, detect
from mobius.progress import NoProgress, Progress

RAW_CHUNK = 1 << 20
OUTPUT_TARGET = 1 << 20  # decompressed bytes per read: cache-sized, and bounded (tar headers shrink 300x)
DECODE_ERRORS = (zstandard.ZstdError, zlib.error, tarfile.TarError, EOFError, UnicodeError)


class ArchiveDamaged(Exception):
    """The stream cannot be read past this point (corrupt compressed data or tar structure)."""


class _RawHashingReader:
    """`source`: a path, or an open descriptor (a pipe) that this reader then owns and closes.
    `hashed` False: the bytes are counted, not hashed (their sha256 is known elsewhere)."""

    def __init__(self, source: Path | int, progress: Progress, *, hashed: bool = True):
        self._fd = source if isinstance(source, int) else os.open(source, os.O_RDONLY)
        self.digest = hashlib.sha256() if hashed else None
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
                if self.digest is not None:
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


class _RawSource:
    """The raw chunks from the reader thread as a file-like `read(size)` for the decoders."""

    def __init__(self, raw: _RawHashingReader, first: bytes):
        self._raw = raw
        self._view = memoryview(first)

    def read(self, size: int) -> memoryview:
        if not self._view:
            data = self._raw.get()
            if data is None:
                return memoryview(b"")
            self._view = memoryview(data)
        piece, self._view = self._view[:size], self._view[size:]
        return piece


class _DecompressedChunks:
    """The decompressed bytes as a sequence of chunks, read exactly or as zero-copy views."""

    def __init__(self, raw: _RawHashingReader):
        first = raw.get() or b""
        self.codec: Codec = detect(first)
        self._decoder: Decoder = self.codec.decoder(_RawSource(raw, first))
        self._view = memoryview(b"")
        self._pos = 0
        self.position = 0  # offset in the decompressed stream
        self._decoded: queue.Queue | None = None
        self._held: bytearray | None = None
        if self.codec.name != "none":
            # Decompression on its own thread: reading+hashing the archive, decompressing, and hashing the
            # members then run side by side instead of taking turns on the caller's thread. It decodes
            # into a fixed pool of buffers, so memory stays bounded whatever the compression ratio.
            self._pool = BufferPool(6, OUTPUT_TARGET)
            self._decoded = queue.Queue()
            self._stop = False
            self._thread = threading.Thread(target=self._decode, name="archive-decoder", daemon=True)
            self._thread.start()

    def _decode(self) -> None:
        try:
            while not self._stop:
                buffer = self._pool.take()
                count = self._decoder.readinto(buffer)
                self._decoded.put((memoryview(buffer)[:count], buffer))
                if not count:
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            self._decoded.put(exc)

    def close(self) -> None:
        if self._decoded is not None and self._thread.is_alive():
            self._stop = True
            for _ in range(6):
                self._pool.give(bytearray(0))  # unblock a decoder waiting for a buffer
            self._thread.join()

    def _next_chunk(self) -> bool:
        """The next decoded chunk, at most OUTPUT_TARGET bytes: cache-sized to hash, and memory stays bounded."""
        if self._decoded is None:
            data = self._decoder.read(OUTPUT_TARGET)
        else:
            if self._held is not None:
                self._pool.give(self._held)  # the caller is done with the previous chunk's views
                self._held = None
            item = self._decoded.get()
            if isinstance(item, BaseException):
                self._decoded.put(item)
                raise item
            data, self._held = item
            if not data:
                self._decoded.put(item)
                self._held = None
        if not data:
            return False
        self._view = memoryview(data)
        self._pos = 0
        return True

    def views(self, size: int) -> Iterator[memoryview]:
        """Exactly `size` bytes as views (fewer only at the end of the stream)."""
        while size > 0:
            if self._pos >= len(self._view) and not self._next_chunk():
                return
            take = min(size, len(self._view) - self._pos)
            piece = self._view[self._pos:self._pos + take]
            self._pos += take
            self.position += take
            size -= take
            yield piece

    def view_within(self, size: int) -> memoryview | None:
        """The next `size` bytes as one view when the current chunk holds them all, else None."""
        end = self._pos + size
        if not size or end > len(self._view):
            return None
        piece = self._view[self._pos:end]
        self._pos = end
        self.position += size
        return piece

    def read(self, size: int) -> bytes:
        end = self._pos + size
        if end <= len(self._view):  # within the current chunk (a tar header, nearly always)
            data = bytes(self._view[self._pos:end])
            self._pos = end
            self.position += size
            return data
        return b"".join(bytes(v) for v in self.views(size))

    def tell(self) -> int:
        return self.position

    def skip(self, size: int) -> int:
        if self._pos + size <= len(self._view):  # padding within the current chunk
            self._pos += size
            self.position += size
            return size
        skipped = 0
        for piece in self.views(size):
            skipped += len(piece)
        return skipped

    def drain(self) -> bool:
        """Decompress what is left (checks the codec's own end); True when the stream ended properly."""
        while self._next_chunk():
            pass
        return self._decoder.complete


class _HeaderSource:
    """What `tarfile.TarInfo.fromtarfile` needs from a TarFile: headers only, data stays with us."""

    def __init__(self, chunks: _DecompressedChunks):
        self.fileobj = chunks
        self.encoding = "utf-8"
        self.errors = "surrogateescape"
        self.pax_headers: dict[str, str] = {}
        self.offset = 0


def _octal(field: bytes) -> int:
    """tarfile's reading of an octal field (up to the first NUL, blanks stripped)."""
    if field[-1] in (0, 32):  # the usual form, digits then one NUL or space: one int() call
        try:
            return int(field[:-1], 8)
        except ValueError:
            pass
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


_USTAR = b"ustar\x0000"
_PLAIN_TYPES = frozenset(b"052")  # regular file, folder, symlink


def _plain_ustar(buf: bytes) -> tarfile.TarInfo | None:
    """A header tarfile would parse the same way, parsed without its per-field helpers: ustar magic,
    valid checksum, a regular file, folder or symlink, an ASCII name without prefix. None otherwise.
    Only the fields Mobius reads are set (name, type, size, mode, mtime, link target, checksum); uid,
    gid and the owner names stay at TarInfo's defaults, as nothing here restores ownership."""
    if len(buf) != tarfile.BLOCKSIZE or buf[257:265] != _USTAR or buf[156] not in _PLAIN_TYPES or buf[345]:
        return None
    try:
        field = buf[148:156]  # written as six digits, NUL, space: read up to the NUL, as tarfile does
        chksum = int(field[:6], 8) if field[6] == 0 else _octal(field)
        if chksum != sum(buf) - sum(field) + 256:
            return None
        name = buf[:100].split(b"\0", 1)[0]
        link = buf[157:257].split(b"\0", 1)[0]
        if not (name.isascii() and link.isascii()):
            return None
        info = tarfile.TarInfo(name.decode("ascii"))
        info.mode, info.size, info.mtime = _octal(buf[100:108]), _octal(buf[124:136]), _octal(buf[136:148])
    except ValueError:
        return None
    info.type, info.chksum = buf[156:157], chksum
    info.linkname = link.decode("ascii")
    if info.isdir():
        info.name = info.name.rstrip("/")
    return info


def _next_header(source: _HeaderSource) -> tarfile.TarInfo:
    """tarfile.TarInfo.fromtarfile, with plain ustar headers (most members) parsed by `_plain_ustar`."""
    buf = source.fileobj.read(tarfile.BLOCKSIZE)
    info = _plain_ustar(buf) if not source.pax_headers else None
    if info is None:
        info = tarfile.TarInfo.frombuf(buf, source.encoding, source.errors)
    info.offset = source.fileobj.tell() - tarfile.BLOCKSIZE
    return info._proc_member(source)


class ArchiveReader:
    """`with ArchiveReader(path) as reader: for info in reader.members(): ... reader.chunks(info)`; then finish().

    tarfile parses the headers (PAX, GNU long names, ustar); the member data is handed out as
    views of the decompressed chunks, without copies, and skipped when the caller does not ask.
    """

    def __init__(self, path: Path, progress: Progress | None = None, *, fd: int | None = None,
                 hashed: bool = True):
        """`fd`: read the archive's bytes from this descriptor (a pipe; owned and closed here) rather
        than from `path`, which then only names the archive. `hashed` False: `finish` reports no
        sha256 of the whole (the writer of a piped archive hashed it already), only its size."""
        self.path = Path(path)
        self._fd = fd
        self._hashed = hashed
        self._progress = progress or NoProgress()
        self.current: str | None = None
        self.damaged = False
        self.ended = False  # the tar end-of-archive marker was read
        self._chunks: _DecompressedChunks | None = None
        self._remaining = 0
        self._next_header = 0

    def __enter__(self) -> ArchiveReader:
        if self._fd is None:
            total = os.path.getsize(self.path)
        else:  # a file's size is known; a pipe's is not
            st = os.fstat(self._fd)
            total = st.st_size if stat.S_ISREG(st.st_mode) else None
        self._progress.start(f"read {self.path.name}", total=total, unit="bytes")
        self._raw = _RawHashingReader(self.path if self._fd is None else self._fd, self._progress,
                                      hashed=self._hashed)
        try:
            self._chunks = _DecompressedChunks(self._raw)
        except DECODE_ERRORS as exc:
            self.damaged = True
            self._damage = str(exc)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._chunks is not None:
            self._chunks.close()
        self._raw.close()
        self._progress.finish()

    @property
    def codec(self) -> str:
        return self._chunks.codec.name if self._chunks else "unknown"

    def members(self) -> Iterator[tarfile.TarInfo]:
        """Each member header in order; raises ArchiveDamaged where the stream stops making sense."""
        if self._chunks is None:
            raise ArchiveDamaged(self._damage)
        chunks = self._chunks
        source = _HeaderSource(chunks)
        try:
            while True:
                if chunks.position < self._next_header:
                    wanted = self._next_header - chunks.position
                    if chunks.skip(wanted) != wanted:
                        raise ArchiveDamaged("unexpected end of data (truncated)")
                try:
                    info = _next_header(source)
                except tarfile.EOFHeaderError:
                    self.ended = True
                    return
                except tarfile.EmptyHeaderError:
                    return  # the stream stopped where a header should be: no end-of-archive marker
                self._next_header = source.offset
                self._remaining = info.size if info.isreg() and not info.issparse() else 0
                self.current = info.name
                yield info
        except DECODE_ERRORS as exc:
            self.damaged = True
            raise ArchiveDamaged(_describe(exc)) from None

    def chunks(self, info: tarfile.TarInfo) -> Iterator[memoryview]:
        """The data of the member `members()` just yielded, as views (valid until the next chunk is read)."""
        whole = self._chunks.view_within(self._remaining)
        if whole is not None:  # a small member: one view, no inner generator
            self._remaining = 0
            yield whole
            return
        try:
            for piece in self._chunks.views(self._remaining):
                self._remaining -= len(piece)
                yield piece
        except DECODE_ERRORS as exc:
            self.damaged = True
            raise ArchiveDamaged(_describe(exc)) from None
        if self._remaining:
            self.damaged = True
            raise ArchiveDamaged(f"unexpected end of data (truncated) in {info.name}")

    def finish(self) -> tuple[str, int, bool]:
        """Read to the end of the file: (sha256 of the whole file or "" when not `hashed`, its size,
        compressed stream complete)."""
        complete = False
        if self._chunks is not None and not self.damaged:
            try:
                complete = self._chunks.drain()
            except DECODE_ERRORS:
                complete = False
                self.damaged = True
        while self._raw.get() is not None:
            pass
        sha256 = self._raw.digest.hexdigest() if self._raw.digest is not None else ""
        return sha256, self._raw.size, complete


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return "unexpected end of data (truncated)" if "unexpected end" in text or "truncated" in text else text
