"""Pack files: many blobs in one tar + zstd file that GNU tools open without Mobius.

A pack is a tar archive whose members are named by the sha256 of their content
(`<sha256>`, mode 0644, mtime 0), compressed as a sequence of zstd frames:
`zstd -dc PACK | tar -xO <sha256>` prints one blob. Small blobs share a frame (a group of about
1 MiB of whole tar members); a large blob is a frame of its own. The repository index records,
per blob, the frame's offset and length in the pack and where the blob's bytes start inside the
decompressed frame, so one blob is read without decompressing the pack from its start.

A pack is written under a temp name (O_DIRECT where the file system has it), fsynced, re-read from
the device by `check_pack` (every blob's sha256, tar header and padding, and the pack's own sha256),
and only then renamed to the sha256 of its bytes (`packs/<first two>/<sha256>.tar.zst`) and indexed.
Frames are encoded as frames.py chooses: a stored frame (raw zstd blocks) is read back straight from
its blocks.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import hashlib
import mmap
import os
import queue
import secrets
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import zstandard

from mobius.backup.archive import _byte_sum, _ustar_header
from mobius.backup.crypto import PLAIN, RepositoryKeys, file_is_encrypted
from mobius.backup.frames import (
    RAW_BLOCK,
    RAW_BLOCK_HEADER,
    STORED_HEADER_BYTES,
    STORED_SIGNATURE,
    FrameChooser,
    FrameEncoder,
    StoredFrame,
)
from mobius.errors import InputError
from mobius.safety.atomic import TEMP_PREFIX, fsync_dir, pwrite_all, write_all

BLOCK = tarfile.BLOCKSIZE
GROUP_TARGET = 1 << 20  # uncompressed bytes of small members per zstd frame
PACK_TARGET = 64 << 20  # uncompressed bytes per pack
GROUPS_IN_FLIGHT = 2  # groups of small members being compressed on their own thread, at most
READ_CHUNK = 1 << 20
CACHED_GROUP = 8 << 20  # frames up to this (compressed) are decompressed whole and kept for the next blob
PACK_SUFFIX = ".tar.zst"
END_OF_TAR = bytes(2 * BLOCK)
PRIVATE = 0o600  # packs hold the settings file and the database dump: only their owner may read them


class PackDamaged(Exception):
    """A pack's bytes do not decode to what the index says they hold."""


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """Where a blob lies: pack name, its frame's offset and length, the blob's offset in the decompressed frame."""

    pack: str
    offset: int
    length: int
    skip: int
    size: int

    def as_row(self, sha256: str) -> list:
        return [sha256, self.offset, self.length, self.skip, self.size]


@dataclass
class PackInfo:
    """A finished pack: its name (the sha256 of its bytes), size, and the blobs it holds."""

    name: str
    size: int
    blobs: Mapping[str, BlobLocation]  # a dict when written; compact (index.PackBlobs) once indexed
    raw_bytes: int = 0
    outside: str | None = None  # `SealedPack.outside`: lets `check_pack` hash each byte once (None: hash twice)


def pack_path(packs: Path, name: str) -> Path:
    return packs / name[:2] / f"{name}{PACK_SUFFIX}"


def _tar_header(sha256: str, size: int) -> bytes:
    """A blob's member header (what `_ustar_header` writes for it), from a template: only the name and the size
    differ between blobs, so the checksum is the template's plus theirs. Built for every blob written and
    again for every blob checked."""
    if len(sha256) == DIGEST_HEX and sha256.isascii() and 0 <= size < 0o77777777777:
        name = sha256.encode("ascii")
        size_field = b"%011o\0" % size
        checksum = _BLOB_FIXED_SUM + _byte_sum(name + size_field)
        return b"".join((name, _BLOB_AFTER_NAME, size_field, _BLOB_MTIME, b"%06o\0 " % checksum, _BLOB_TAIL))
    header = _ustar_header(sha256, tarfile.REGTYPE, size, 0o644, 0, "")
    if header is None:
        raise ValueError(f"a blob of {size} bytes does not fit a ustar header")
    return header


DIGEST_HEX = 64
_BLOB_TEMPLATE = _ustar_header("0" * DIGEST_HEX, tarfile.REGTYPE, 0, 0o644, 0, "") or b""
_BLOB_AFTER_NAME, _BLOB_MTIME, _BLOB_TAIL = _BLOB_TEMPLATE[64:124], _BLOB_TEMPLATE[136:148], _BLOB_TEMPLATE[156:]
_BLOB_FIXED_SUM = sum(_BLOB_AFTER_NAME) + sum(_BLOB_MTIME) + 8 * ord(" ") + sum(_BLOB_TAIL)


def _padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


class DirectAppender:
    """Appends to a new file with O_DIRECT, through a writer thread: the bytes go from our buffer to the device,
    not copied into the page cache first (measured here, 1 GiB in 4 MiB writes: 0.7-2.0 s of CPU through the
    page cache, 0.1-0.3 s direct; a backup of 1 GiB of media spent half its CPU in that copy). Bytes are
    gathered in one of two aligned SLAB buffers; a full one is written by the thread while the other fills.
    `close` writes the unaligned tail without O_DIRECT. `open` returns None where the file system refuses
    O_DIRECT (tmpfs): the caller writes plainly. An error of the thread is raised by the next `write`/`close`."""

    SLAB = 2 << 20
    ALIGN = 4096

    def __init__(self, fd: int):
        self.fd = fd
        self._free: queue.Queue[mmap.mmap] = queue.Queue()
        for _ in range(2):
            self._free.put(mmap.mmap(-1, self.SLAB))
        self._buffer = self._free.get()
        self._fill = 0
        self._at = 0  # the file offset of the buffer's first byte
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-pack-write")
        self._writes: collections.deque[Future] = collections.deque()

    @classmethod
    def open(cls, path: Path) -> DirectAppender | None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
        except OSError:
            return None
        return cls(fd)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            step = min(len(view), self.SLAB - self._fill)
            self._buffer[self._fill:self._fill + step] = view[:step]
            self._fill += step
            view = view[step:]
            if self._fill == self.SLAB:
                self._hand_over()

    def _hand_over(self) -> None:
        buffer, at = self._buffer, self._at
        self._writes.append(self._thread.submit(self._write_out, buffer, self.SLAB, at))
        self._at += self.SLAB
        self._fill = 0
        while self._writes and self._writes[0].done():
            self._writes.popleft().result()
        self._buffer = self._free.get()  # the writer returns each buffer, even when its write failed

    def _write_out(self, buffer: mmap.mmap, length: int, at: int) -> None:
        try:
            with memoryview(buffer) as view:
                self._pwrite(view[:length], at)
        finally:
            self._free.put(buffer)

    def _pwrite(self, view: memoryview, at: int) -> None:
        try:
            pwrite_all(self.fd, view, at)
        except OSError as exc:  # O_DIRECT refused after all (an alignment this device does not take)
            if exc.errno != errno.EINVAL or not self._plain():
                raise
            pwrite_all(self.fd, view, at)

    def _plain(self) -> bool:
        """Drop O_DIRECT (False when it was not set)."""
        flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
        if not flags & os.O_DIRECT:
            return False
        fcntl.fcntl(self.fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
        return True

    def close(self) -> None:
        """Write what is gathered (the unaligned tail plainly) and wait for every write; raises the first error."""
        try:
            while self._writes:
                self._writes.popleft().result()
            aligned = self._fill - self._fill % self.ALIGN
            with memoryview(self._buffer) as view:
                if aligned:
                    self._pwrite(view[:aligned], self._at)
                if self._fill > aligned:
                    self._plain()
                    pwrite_all(self.fd, view[aligned:self._fill], self._at + aligned)
        finally:
            self.abort()

    def abort(self) -> None:
        self._thread.shutdown(wait=True)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class SealedPack:
    """A pack whose bytes are complete and durable under a temp name: what is checked before it is published."""

    stored: Path  # the temp file (its .age twin when the repository encrypts)
    name: str  # the sha256 of the stored bytes: the name it is published under
    size: int
    blobs: dict[str, tuple[int, int, int, int]]  # sha256 -> (offset, length, skip, size)
    raw_bytes: int
    compact: Mapping[str, BlobLocation] | None = None  # the same blobs as an index table, once one was made
    outside: str | None = None  # `PackWriter`'s digest of the bytes outside stored frames (None: encrypted)

    def locations(self) -> Mapping[str, BlobLocation]:
        if self.compact is not None:
            return self.compact
        return {sha: BlobLocation(self.name, *where) for sha, where in self.blobs.items()}

    def rows(self) -> list[tuple[str, int, int, int, int]]:
        """(sha256, offset, length, skip, size) in the pack's order (what an index table is made of)."""
        return sorted(((sha, *where) for sha, where in self.blobs.items()), key=lambda row: (row[1], row[3]))

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.stored)


class PackWriter:
    """Blobs in, one pack out. Nothing is under a final name until `publish` renamed the sealed file.

    `finish` is `end` (the last bytes written, on the caller's thread), `seal` (fsync and, for an
    encrypted repository, encryption: any thread) and `publish` (the rename: the caller's thread,
    after the sealed pack was checked)."""

    def __init__(self, packs: Path, keys: RepositoryKeys = PLAIN, *, direct: bool = True,
                 frames: FrameChooser | None = None, group_frames: FrameChooser | None = None):
        """`frames` (used on the caller's thread) and `group_frames` (on the compressing thread) may be shared
        by the packs one writer fills after another: a zstd context at level 3 holds ~3.5 MB, and one pack
        fills while the one before it is sealed. A pack is done with them once `end` returned."""
        self.packs = packs
        self.keys = keys
        packs.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.tmp = packs / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}{PACK_SUFFIX}"
        self._fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE)  # read: add_unhashed
        self._direct = DirectAppender.open(self.tmp) if direct else None
        self._frames = frames or FrameChooser()
        self._digest = hashlib.sha256()
        # the bytes of every frame that is not stored (zstd-compressed, the end of the tar), in order: with a
        # stored frame's exact layout and its blobs' sha256, they determine every byte of the pack (`check_pack`)
        self._outside = hashlib.sha256()
        self.offset = 0
        self.raw_bytes = 0
        self._group = bytearray()
        self._members: list[tuple[str, int, int]] = []  # (sha256, skip, size) in the open group
        self._open_group: set[str] = set()
        self.blobs: dict[str, tuple[int, int, int, int]] = {}
        self._compressing: collections.deque[tuple[Future[bytes], list[tuple[str, int, int]], set[str]]] = \
            collections.deque()
        self._compressor: ThreadPoolExecutor | None = None
        self._group_frames = group_frames or FrameChooser()  # the compressing thread's (a zstd context: one thread)

    def __contains__(self, sha256: str) -> bool:
        return (sha256 in self.blobs or sha256 in self._open_group
                or any(sha256 in shas for _, _, shas in self._compressing))

    @property
    def full(self) -> bool:
        return self.raw_bytes >= PACK_TARGET

    @property
    def direct(self) -> bool:
        """Written with O_DIRECT (then `add_unhashed`, which rewrites and re-reads what it wrote, is not offered)."""
        return self._direct is not None

    def _write(self, data: bytes, *, stored: bool = False) -> None:
        self._digest.update(data)
        if not stored:
            self._outside.update(data)
        if self._direct is not None:
            self._direct.write(data)
        else:
            write_all(self._fd, data)
        self.offset += len(data)

    def add(self, sha256: str, data: bytes) -> None:
        """A whole blob in memory whose sha256 the caller computed from these very bytes (a small file,
        a settings file, a blob read back checked)."""
        if len(data) >= GROUP_TARGET:
            self._flush_group()
            frame = self._frames.encoder(data, BLOCK + len(data) + len(_padding(len(data))))
            self._frame_blob(sha256, len(data), frame, [data])
            return
        self._members.append((sha256, len(self._group) + BLOCK, len(data)))
        self._open_group.add(sha256)
        self._group += _tar_header(sha256, len(data))
        self._group += data
        self._group += _padding(len(data))
        self.raw_bytes += BLOCK + len(data)
        if len(self._group) >= GROUP_TARGET:
            self._hand_off_group()

    def add_stream(self, sha256: str, size: int, chunks: Iterable[bytes | memoryview]) -> None:
        """A large blob as its own frame, streamed; the chunks must add up to `size` bytes whose sha256
        is `sha256` (checked here: a file that changed between hashing and copying fails the pack)."""
        self._flush_group()
        chunks = iter(chunks)
        first = next(chunks, b"")
        frame = self._frames.encoder(first, BLOCK + size + len(_padding(size)))
        digest = hashlib.sha256(first)
        copied = len(first)

        def checked() -> Iterator[bytes | memoryview]:
            nonlocal copied
            yield first
            for chunk in chunks:
                digest.update(chunk)
                copied += len(chunk)
                yield chunk
            if copied != size or digest.hexdigest() != sha256:
                raise PackDamaged(f"blob {sha256}: {copied} bytes with sha256 {digest.hexdigest()} were copied")

        self._frame_blob(sha256, size, frame, checked())

    def stores(self, head: bytes | memoryview) -> bool:
        """Whether a blob starting with `head` would go into a stored frame (what `add_unhashed` takes)."""
        return self._frames.kind(head) == "stored"

    def add_unhashed(self, size: int, chunks: Iterable[bytes | memoryview], known: Callable[[str], bool]
                     ) -> tuple[str, bool]:
        """A large blob of bytes zstd cannot shrink, not hashed before: written as a stored frame while it is
        hashed (one read of the file instead of two), its tar header patched in once its sha256 is known (a
        stored frame holds it verbatim). When `known(sha256)` says the repository already holds it, the
        frame is taken back. The pack's digest covers the frame as patched: it is read back from the page
        cache. Returns (sha256, whether it was added); on any error the frame is taken back."""
        if self._direct is not None:
            raise RuntimeError("add_unhashed needs a pack written through the page cache (direct=False)")
        self._flush_group()
        start = self.offset
        frame = StoredFrame(BLOCK + size + len(_padding(size)))
        digest = hashlib.sha256()
        copied = 0
        try:
            self._write_undigested(frame.compress(bytes(BLOCK)))  # the header's place
            for chunk in chunks:
                digest.update(chunk)
                copied += len(chunk)
                self._write_undigested(frame.compress(chunk))
            self._write_undigested(frame.compress(_padding(size)) + frame.flush())
            sha256 = digest.hexdigest()
            if copied != size:
                raise PackDamaged(f"{copied} bytes were read where {size} were listed")
            if known(sha256) or sha256 in self:
                self._take_back(start)
                return sha256, False
            os.pwrite(self._fd, _tar_header(sha256, size), start + STORED_HEADER_BYTES + RAW_BLOCK_HEADER)
        except BaseException:
            self._take_back(start)
            raise
        position = start
        while position < self.offset:
            raw = os.pread(self._fd, min(READ_CHUNK, self.offset - position), position)
            if not raw:
                raise PackDamaged(f"the pack being written ends at byte {position}")
            self._digest.update(raw)
            position += len(raw)
        self.blobs[sha256] = (start, self.offset - start, BLOCK, size)
        self.raw_bytes += BLOCK + size
        return sha256, True

    def _write_undigested(self, data: bytes) -> None:
        write_all(self._fd, data)
        self.offset += len(data)

    def _take_back(self, start: int) -> None:
        os.ftruncate(self._fd, start)
        os.lseek(self._fd, start, os.SEEK_SET)
        self.offset = start

    def _frame_blob(self, sha256: str, size: int, frame: FrameEncoder, chunks: Iterable[bytes | memoryview]) -> None:
        """One blob as one frame: tar header, bytes, padding."""
        start = self.offset
        stored = isinstance(frame, StoredFrame)
        self._write(frame.compress(_tar_header(sha256, size)), stored=stored)
        for chunk in chunks:
            out = frame.compress(chunk)
            if out:
                self._write(out, stored=stored)
        self._write(frame.compress(_padding(size)) + frame.flush(), stored=stored)
        self.blobs[sha256] = (start, self.offset - start, BLOCK, size)
        self.raw_bytes += BLOCK + size

    def _hand_off_group(self) -> None:
        """The open group of small blobs, when zstd shrinks it, to the compressing thread while the caller fills
        the next (zstd releases the GIL: on 100,000 small files it was 2.3 s of the caller's thread); the
        frames are written in order as they come back, at most GROUPS_IN_FLIGHT waiting (about 1 MiB each).
        A group zstd cannot shrink (media) is a stored frame, a copy: written here, as it costs less than a
        hand-off (and holds no more memory)."""
        if not self._group:
            return
        group, self._group = self._group, bytearray()
        members, self._members = self._members, []
        shas, self._open_group = self._open_group, set()
        if self._frames.kind(group) == "stored":
            self._write_compressed()
            self._write_group(self._frames.whole(group), members)
            return
        if self._compressor is None:
            self._compressor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pack-zstd")
        self._compressing.append((self._compressor.submit(self._group_frames.whole, group), members, shas))
        self._write_compressed(keep=GROUPS_IN_FLIGHT)

    def _write_group(self, frame: bytes, members: list[tuple[str, int, int]]) -> None:
        start = self.offset
        self._write(frame, stored=frame.startswith(STORED_SIGNATURE))
        for sha256, skip, size in members:
            self.blobs[sha256] = (start, self.offset - start, skip, size)

    def _write_compressed(self, keep: int = 0) -> None:
        """Write the groups that came back compressed, in order, waiting for the oldest while more than `keep`
        are out; their blobs' places are known from here on."""
        while self._compressing and (len(self._compressing) > keep or self._compressing[0][0].done()):
            future, members, _ = self._compressing[0]
            self._write_group(future.result(), members)
            self._compressing.popleft()

    def _flush_group(self) -> None:
        """Every small blob added so far written (what a blob of a frame of its own, and the end, come after)."""
        self._hand_off_group()
        self._write_compressed()
        if self._compressor is not None:
            self._compressor.shutdown(wait=True)
            self._compressor = None

    def _stop_compressing(self) -> None:
        """Let the compressing thread finish what it holds, its results dropped (the pack is being removed)."""
        for future, _, _ in self._compressing:
            future.cancel()
        self._compressing.clear()
        if self._compressor is not None:
            self._compressor.shutdown(wait=True)
            self._compressor = None

    def end(self) -> None:
        """The last frame and the end of the tar (nothing may be added after)."""
        self._flush_group()
        self._write(self._group_frames.whole(END_OF_TAR))  # its thread is done: no second zstd context made

    def seal(self) -> SealedPack:
        """fsync (and encrypt); any thread. The caller checks the result, then `publish`es it."""
        if self._direct is not None:
            direct, self._direct = self._direct, None
            direct.close()
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        stored, name, size = self.tmp, self._digest.hexdigest(), self.offset
        outside = self._outside.hexdigest()
        if self.keys.encrypts:  # the pack is named by the bytes stored: the age file's
            stored = self.tmp.with_name(self.tmp.name + ".age")
            try:
                self.keys.encrypt_file(self.tmp, stored)
                name, size = _sha256_of(stored)
            except BaseException:
                stored.unlink(missing_ok=True)
                raise
            finally:
                self.tmp.unlink(missing_ok=True)
        return SealedPack(stored, name, size, self.blobs, self.raw_bytes,
                          outside=None if self.keys.encrypts else outside)

    def publish(self, sealed: SealedPack) -> PackInfo:
        """Rename the sealed pack to its name, durably."""
        final = pack_path(self.packs, sealed.name)
        final.parent.mkdir(mode=0o700, exist_ok=True)
        os.replace(sealed.stored, final)
        fsync_dir(final.parent)
        fsync_dir(self.packs)
        return PackInfo(name=sealed.name, size=sealed.size, blobs=sealed.locations(), raw_bytes=sealed.raw_bytes,
                        outside=sealed.outside)

    def finish(self) -> PackInfo:
        """End the tar, fsync, rename to the pack's sha256; the caller checks it before indexing it."""
        self.end()
        return self.publish(self.seal())

    def abort(self) -> None:
        self._stop_compressing()
        if self._direct is not None:
            direct, self._direct = self._direct, None
            direct.abort()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)

    @property
    def empty(self) -> bool:
        return not self.blobs and not self._members and not self._compressing


def _sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _decrypted(path: Path, keys: RepositoryKeys) -> int:
    """An open descriptor on the plain bytes of an encrypted pack: decrypted into a temp file beside the
    packs, unlinked at once (nothing plain stays on disk once the descriptor is closed, or the process dies)."""
    plain = path.parent.parent / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.plain"
    try:
        keys.decrypt_file(path, plain, f"pack {path.name}")
        fd = os.open(plain, os.O_RDONLY | os.O_CLOEXEC)
    finally:
        plain.unlink(missing_ok=True)
    return fd


def _frame_chunks(read: Read, offset: int, length: int, on_raw=None, *, exact: bool = False  # noqa: ANN001
                  ) -> Iterator[bytes]:
    """The decompressed bytes of the frame at [offset, offset + length), in pieces (`on_raw` sees every raw byte
    once, in order). `exact`: a stored frame with exactly `StoredFrame`'s layout, or PackDamaged."""
    head = bytes(read(STORED_HEADER_BYTES, offset))
    if head.startswith(STORED_SIGNATURE) and len(head) == STORED_HEADER_BYTES and length > len(head):
        yield from _stored_chunks(read, offset, length, int.from_bytes(head[-8:], "little"), on_raw, exact=exact)
    elif exact:
        raise PackDamaged(f"frame at byte {offset}: not the stored frame written")
    else:
        yield from _zstd_chunks(read, offset, length, on_raw)


def _stored_chunks(read: Read, offset: int, length: int, content_size: int, on_raw, *,  # noqa: ANN001
                   exact: bool = False) -> Iterator[bytes]:
    """A stored frame's bytes straight from its raw blocks: one read and one copy instead of a read, a
    decompression into fresh memory and a copy (on 1 GiB of media a restore spent as long in decompress()
    as in hashing). Should a block not be raw (another writer's frame with the same header), zstd decodes
    the frame and the bytes not yet given are taken from it. `exact`: every block as `StoredFrame` writes
    them (full raw blocks of RAW_BLOCK bytes, then the last with the rest), else PackDamaged."""
    position = offset + STORED_HEADER_BYTES
    if on_raw is not None:
        on_raw(read(position - offset, offset))
    end = offset + length
    produced = left = 0
    header = bytearray()
    last = False
    while position < end:
        raw = read(min(READ_CHUNK, end - position), position)
        if not raw:
            raise PackDamaged(f"the pack ends at byte {position}, inside a frame that should end at {end}")
        view = memoryview(raw)
        out = []
        while view:
            if left:
                step = min(left, len(view))
                out.append(view[:step])
                view, left, produced = view[step:], left - step, produced + step
                continue
            if last:
                raise PackDamaged(f"frame at byte {offset}: bytes after its last block")
            step = 3 - len(header)
            header += view[:step]
            view = view[step:]
            if len(header) < 3:
                break
            value = int.from_bytes(header, "little")
            header.clear()
            if exact and value != ((content_size - produced) << 3 | 1 if content_size - produced <= RAW_BLOCK
                                   else RAW_BLOCK << 3):
                raise PackDamaged(f"frame at byte {offset}: a block header is not the one written")
            if (value >> 1) & 3:  # not a raw block: zstd decodes the frame from here on
                if out:
                    yield b"".join(out)
                yield from _slice(_zstd_chunks(read, offset, length, _skipping(on_raw, position - offset)), produced,
                                  content_size - produced)
                return
            last, left = bool(value & 1), value >> 3
        if on_raw is not None:
            on_raw(raw)
        position += len(raw)
        if out:
            yield b"".join(out)
    if not last or left or produced != content_size:
        raise PackDamaged(f"frame at byte {offset} is incomplete")


def _skipping(on_raw, already: int):  # noqa: ANN001, ANN202 - a callback, or None
    """`on_raw` for a re-read of the same bytes: the first `already` were given to it before."""
    if on_raw is None:
        return None

    def feed(raw: bytes) -> None:
        nonlocal already
        if already < len(raw):
            on_raw(raw[already:])
        already = max(0, already - len(raw))
    return feed


def _zstd_chunks(read: Read, offset: int, length: int, on_raw=None) -> Iterator[bytes]:  # noqa: ANN001
    frame = zstandard.ZstdDecompressor().decompressobj()
    position = offset
    end = offset + length
    while position < end:
        raw = read(min(READ_CHUNK, end - position), position)
        if not raw:
            raise PackDamaged(f"the pack ends at byte {position}, inside a frame that should end at {end}")
        if on_raw is not None:
            on_raw(raw)
        position += len(raw)
        try:
            out = frame.decompress(raw)
        except zstandard.ZstdError as exc:
            raise PackDamaged(f"frame at byte {offset}: {exc}") from None
        if out:
            yield out
    if not frame.eof:
        raise PackDamaged(f"frame at byte {offset} is incomplete")


def _slice(chunks: Iterator[bytes], skip: int, size: int) -> Iterator[bytes]:
    """Bytes [skip, skip + size) of a stream of chunks."""
    position = 0
    for chunk in chunks:
        end = position + len(chunk)
        if end > skip and position < skip + size:
            yield chunk[max(0, skip - position):min(len(chunk), skip + size - position)]
        position = end
        if position >= skip + size:
            return
    if position < skip + size:
        raise PackDamaged(f"the frame holds {position} bytes, fewer than the {skip + size} the index says")


class BlobReader:
    """Reads blobs by location; keeps packs open and the last small frame decompressed (blobs are
    mostly read in the order they were written, so consecutive small blobs share one decompression)."""

    def __init__(self, packs: Path, keys: RepositoryKeys = PLAIN):
        self.packs = packs
        self.keys = keys
        self._fds: dict[str, int] = {}
        self._frame_key: tuple[str, int] | None = None
        self._frame: bytes = b""

    def _fd(self, pack: str) -> int:
        fd = self._fds.get(pack)
        if fd is None:
            if len(self._fds) >= 8:  # decrypted packs hold disk space while open
                self.close()
            path = pack_path(self.packs, pack)
            try:
                if file_is_encrypted(path):
                    fd = _decrypted(path, self.keys)
                else:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)  # the kernel reads the pack ahead of us
            except FileNotFoundError:
                raise PackDamaged(f"pack {pack} is missing") from None
            self._fds[pack] = fd
        return fd

    def chunks(self, where: BlobLocation) -> Iterator[bytes]:
        """The blob's bytes, unchecked (callers hash them against the name they asked for)."""
        fd = self._fd(where.pack)
        if where.length <= CACHED_GROUP and where.size < GROUP_TARGET:  # a larger blob has its frame to itself
            key = (where.pack, where.offset)
            if key != self._frame_key:
                self._frame_key = None
                self._frame = b"".join(_frame_chunks(partial(os.pread, fd), where.offset, where.length))
                self._frame_key = key
            if where.skip + where.size > len(self._frame):
                raise PackDamaged(f"the frame at byte {where.offset} of pack {where.pack} is shorter than "
                                  "the index says")
            yield self._frame[where.skip:where.skip + where.size]
            return
        yield from _slice(_frame_chunks(partial(os.pread, fd), where.offset, where.length), where.skip, where.size)

    def read_checked(self, sha256: str, where: BlobLocation) -> Iterator[bytes]:
        """The blob's bytes; raises PackDamaged at the end when they do not hash to `sha256`."""
        digest = hashlib.sha256()
        for chunk in self.chunks(where):
            digest.update(chunk)
            yield chunk
        if digest.hexdigest() != sha256:
            raise PackDamaged(f"blob {sha256} in pack {where.pack} reads back with sha256 {digest.hexdigest()}")

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


@dataclass
class PackCheck:
    """What re-reading a pack found: its sha256 (should be its name), and each damaged blob with why."""

    sha256: str
    size: int
    damaged: dict[str, str]


def check_pack(path: Path, blobs: Mapping[str, BlobLocation], *, drop_cache: bool = True,
               keys: RepositoryKeys = PLAIN, written: tuple[str, str] | None = None) -> PackCheck:
    """Re-read a pack from the device once: the sha256 of its bytes, and for each blob its tar header
    (name and size, as GNU tar reads them) and its content's sha256. Damage is reported per blob,
    so a bad byte names the blobs (and through the snapshot, the files) it affects. An encrypted pack
    is hashed as stored, then decrypted (age authenticates every 64 KiB: a bad byte fails the whole
    pack) and its plain bytes checked the same way.

    `written` = (name, outside digest) of a plain pack `PackWriter` just sealed: the check then hashes each
    byte once instead of twice. A stored frame's bytes are held to the exact layout `StoredFrame` writes (its
    header, full raw blocks, the last one's size) with tar headers byte for byte the ones written, no byte
    between or after its members and every blob's sha256; every other byte (zstd frames, the tar's end) is
    hashed and compared with the writer's digest of those same bytes. Together they fix every byte of the
    pack, so it is the one whose sha256 is `name` (the sha256 of the whole is then returned as `name`): on
    1 GiB of media a backup's check hashed it twice, 0.4 s of a 3 s backup."""
    if written is not None and not file_is_encrypted(path):
        return _check_written(path, blobs, *written, drop_cache=drop_cache)
    if file_is_encrypted(path):
        if drop_cache:
            _drop_cache(path)
        sha256, size = _sha256_of(path)
        try:
            fd = _decrypted(path, keys)
        except InputError as exc:
            return PackCheck(sha256=sha256, size=size, damaged={sha: exc.message for sha in blobs})
        try:
            plain = check_pack(Path(f"/proc/self/fd/{fd}"), blobs, drop_cache=False)
        finally:
            os.close(fd)
        return PackCheck(sha256=sha256, size=size, damaged=plain.damaged)
    return PackCheck(*_read_back(path, blobs, drop_cache=drop_cache))


def _check_written(path: Path, blobs: Mapping[str, BlobLocation], name: str, outside: str, *,
                   drop_cache: bool) -> PackCheck:
    """`check_pack` of a pack just written (`written`): each byte hashed once."""
    found, size, damaged = _read_back(path, blobs, drop_cache=drop_cache, once=True)
    return PackCheck(sha256=name if found == outside else f"other than written (its bytes outside stored frames "
                     f"hash to {found}, {outside} when written)", size=size, damaged=damaged)


def _read_back(path: Path, blobs: Mapping[str, BlobLocation], *, drop_cache: bool, once: bool = False
               ) -> tuple[str, int, dict[str, str]]:
    """One read of a plain pack, every frame walked by `_check_frame`: (sha256, size, damaged blobs). The sha256
    is of all its bytes; with `once`, of its bytes outside stored frames, which are held to their exact layout
    instead (`check_pack(written=)`)."""
    damaged: dict[str, str] = {}
    digest = hashlib.sha256()
    with DeviceFile(path, from_device=drop_cache) as pack:
        position = 0
        for offset, length, members in _frames(blobs):
            if offset > position:  # bytes between frames (there should be none): hashed all the same
                _hash_range(pack.read, position, offset, digest.update)
            exact = once and bytes(pack.read(len(STORED_SIGNATURE), offset)) == STORED_SIGNATURE
            try:
                _check_frame(pack.read, offset, length, members, None if exact else digest.update, damaged,
                             exact=exact)
            except PackDamaged as exc:
                for sha, _ in members:
                    damaged.setdefault(sha, str(exc))
            position = offset + length
        _hash_range(pack.read, position, pack.size, digest.update)
        size = pack.size
    return digest.hexdigest(), size, damaged


def _frames(blobs: Mapping[str, BlobLocation]) -> Iterator[tuple[int, int, list[tuple[str, BlobLocation]]]]:
    """(offset, length, its blobs in order) per frame, in the pack's order; an index's compact table
    (`index.PackBlobs.frames`) gives them one frame at a time."""
    frames = getattr(blobs, "frames", None)
    if frames is not None:
        yield from frames()
        return
    groups: dict[tuple[int, int], list[tuple[str, BlobLocation]]] = {}
    for sha, where in blobs.items():
        groups.setdefault((where.offset, where.length), []).append((sha, where))
    for (offset, length), members in sorted(groups.items()):
        members.sort(key=lambda item: item[1].skip)
        yield offset, length, members


Read = Callable[[int, int], "bytes | memoryview"]  # (length, offset) -> up to length bytes; empty at the end


def _hash_range(read: Read, start: int, end: int, on_raw) -> None:  # noqa: ANN001
    while start < end:
        raw = read(min(READ_CHUNK, end - start), start)
        if not raw:
            return
        on_raw(raw)
        start += len(raw)


class DeviceFile:
    """A file read back from the device itself (O_DIRECT): nothing the page cache holds is trusted, and the
    bytes are not copied out of it (on 1 GiB of media a backup spent 14% of its CPU copying reads out of the
    page cache). Reads go through one aligned buffer of SLAB bytes; what `read` returns is valid until the
    next call. Where the file system refuses O_DIRECT (tmpfs), or `from_device` is false, plain reads, with
    the cached pages dropped first when `from_device`."""

    SLAB = 2 << 20
    ALIGN = 4096

    def __init__(self, path: Path, *, from_device: bool = True):
        self.fd = -1
        self._buffer: mmap.mmap | None = None
        if from_device:
            with contextlib.suppress(OSError):
                self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECT)
                self._buffer = mmap.mmap(-1, self.SLAB)  # page-aligned, as O_DIRECT needs
        if self.fd < 0:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        if from_device:  # with O_DIRECT too: a pack just written would stay cached, crowding out what others use
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if self._buffer is None:
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_WILLNEED)
        self.size = os.fstat(self.fd).st_size
        self._start = 0
        self._filled = 0

    def read(self, length: int, offset: int) -> bytes | memoryview:
        if self._buffer is None:
            return os.pread(self.fd, length, offset)
        if not self._start <= offset < self._start + self._filled:
            self._start = offset - offset % self.ALIGN
            try:
                self._filled = os.preadv(self.fd, [self._buffer], self._start)
            except OSError:  # O_DIRECT refused after all (an odd file system): plain reads from here on
                self._plain()
                return self.read(length, offset)
            if offset >= self._start + self._filled:
                return b""
        at = offset - self._start
        return memoryview(self._buffer)[at:min(at + length, self._filled)]

    def _plain(self) -> None:
        fd = os.open(f"/proc/self/fd/{self.fd}", os.O_RDONLY | os.O_CLOEXEC)
        os.close(self.fd)
        self.fd, self._buffer = fd, None

    def __enter__(self) -> DeviceFile:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
        self._buffer = None  # unmapped once the last view of it is gone


def _drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _check_frame(read: Read, offset: int, length: int, members: list[tuple[str, BlobLocation]], on_raw,
                 damaged: dict[str, str], *, exact: bool = False) -> None:  # noqa: ANN001
    """Walk one frame's decompressed bytes: each member's header names it with its size, its bytes hash to it,
    its padding is zeros. `exact` (a stored frame just written): the frame is laid out as `StoredFrame` writes
    it, each header is byte for byte the one written, and no byte lies between or after the members."""
    queue = list(members)
    position = 0
    pending = bytearray()  # bytes of the current header
    current: tuple[str, BlobLocation] | None = None
    digest = None
    consumed = 0
    padded, padding = "", 0  # the member whose padding comes next, and how many bytes of it
    raw_seen = [0]

    def count(raw: bytes) -> None:
        raw_seen[0] += len(raw)
        if on_raw is not None:
            on_raw(raw)

    try:
        for chunk in _frame_chunks(read, offset, length, count, exact=exact):
            view = memoryview(chunk)
            while view:
                if padding:  # the zeros after the last member (a stored frame has no checksum to catch them)
                    step = min(len(view), padding)
                    if view[:step] != bytes(step):
                        damaged.setdefault(padded, "the tar padding after it is not zeros")
                    view = view[step:]
                    position += step
                    padding -= step
                    continue
                if current is None:
                    if not queue:
                        if exact:
                            damaged.setdefault(members[-1][0], "bytes after the frame's last member")
                        position += len(view)
                        break
                    sha, where = queue[0]
                    header_at = where.skip - BLOCK
                    if position < header_at:
                        if exact:
                            damaged.setdefault(sha, "bytes before its tar header")
                        step = min(len(view), header_at - position)
                        view = view[step:]
                        position += step
                        continue
                    step = min(len(view), BLOCK - len(pending))
                    pending += view[:step]
                    view = view[step:]
                    position += step
                    if len(pending) == BLOCK:
                        problem = ("its tar header is not the one written"
                                   if exact and pending != _tar_header(sha, where.size)
                                   else _header_problem(bytes(pending), sha, where.size))
                        pending.clear()
                        if problem:
                            damaged[sha] = problem
                        current = queue.pop(0)
                        digest = hashlib.sha256()
                        consumed = 0
                else:
                    sha, where = current
                    step = min(len(view), where.size - consumed)
                    digest.update(view[:step])
                    view = view[step:]
                    position += step
                    consumed += step
                if current is not None and consumed == current[1].size:
                    if digest.hexdigest() != current[0]:
                        damaged.setdefault(current[0], f"content reads back with sha256 {digest.hexdigest()}")
                    padded, padding = current[0], -current[1].size % BLOCK
                    current = None
    except PackDamaged:
        if raw_seen[0] < length and on_raw is not None:  # keep the pack's sha256 whole: hash what was not read
            _hash_range(read, offset + raw_seen[0], offset + length, on_raw)
        raise
    leftover = ([current[0]] if current else []) + [sha for sha, _ in queue]
    for sha in leftover:
        damaged.setdefault(sha, "the frame ends before this blob's bytes")


def _header_problem(header: bytes, sha256: str, size: int) -> str | None:
    if header == _tar_header(sha256, size):  # byte for byte what the writer wrote (and what GNU tar reads)
        return None
    try:
        info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
    except tarfile.TarError as exc:
        return f"tar header unreadable ({exc})"
    if info.name != sha256 or info.size != size or not info.isreg():
        return f"tar header names {info.name!r} of {info.size} bytes"
    return None
