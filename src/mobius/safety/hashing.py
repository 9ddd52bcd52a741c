"""SHA-256 of files, fast: hashlib (OpenSSL) with large buffers, threads across cores.

hashlib releases the GIL on large buffers, so a thread pool hashes on every core. A file that
fits in one chunk is read with a single `os.read` (no buffer allocated per file), and many
small files go to the pool in groups, so 100,000 thumbnails cost 100,000 reads, not 100,000
thread hand-offs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mobius.safety.child import in_child

CHUNK = 1 << 20
GROUP_BYTES = 4 << 20  # a pool task hashes files until it has read this much (or GROUP_FILES)
GROUP_FILES = 256


def sha256_fd(fd: int, size_hint: int = -1, *, on_bytes: Callable[[int], None] | None = None) -> str:
    """Hex sha256 of an open file from its current offset; one read when it fits in a chunk."""
    if 0 <= size_hint < CHUNK:
        data = os.read(fd, size_hint + 1)
        if len(data) <= size_hint:  # short read of a regular file: end of file reached
            if on_bytes and data:
                on_bytes(len(data))
            return hashlib.sha256(data).hexdigest()
        digest = hashlib.sha256(data)
        if on_bytes:
            on_bytes(len(data))
    else:
        digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while True:
        count = os.readv(fd, [buffer])
        if not count:
            break
        digest.update(view[:count])
        if on_bytes:
            on_bytes(count)
    return digest.hexdigest()


def hash_uncached(fd: int, on_bytes: Callable[[int], None] | None = None, *, keep_cached: bool = False) -> str:
    """sha256 of an open file read from the device: drop its clean cached pages first, and after
    unless `keep_cached` (a file about to be read again, e.g. by the next verify)."""
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    offset = 0
    while True:
        count = os.preadv(fd, [buffer], offset)
        if not count:
            break
        digest.update(view[:count])
        offset += count
        if on_bytes:
            on_bytes(count)
    if not keep_cached:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    return digest.hexdigest()


def sha256_file(path: str | Path, *, on_bytes: Callable[[int], None] | None = None) -> str:
    """Hex sha256 of a file's contents."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return sha256_fd(fd, os.fstat(fd).st_size, on_bytes=on_bytes)
    finally:
        os.close(fd)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def default_workers() -> int:
    return max(2, min(8, os.cpu_count() or 2))


def _hash_group(paths: list, on_bytes: Callable[[int], None] | None) -> list[tuple[Path, str | OSError]]:
    out: list[tuple[Path, str | OSError]] = []
    for path in paths:
        try:
            out.append((path, sha256_file(path, on_bytes=on_bytes)))
        except OSError as exc:
            out.append((path, exc))
    return out


def _groups(paths: Iterable, sizes: Iterable[int] | None) -> Iterator[list]:
    group: list = []
    weight = 0
    size_iter = iter(sizes) if sizes is not None else None
    for path in paths:
        group.append(path)
        weight += next(size_iter) if size_iter is not None else CHUNK // 16
        if weight >= GROUP_BYTES or len(group) >= GROUP_FILES:
            yield group
            group, weight = [], 0
    if group:
        yield group


def hash_files(paths: Iterable[Path], *, workers: int | None = None,
               on_bytes: Callable[[int], None] | None = None,
               sizes: Iterable[int] | None = None) -> Iterator[tuple[Path, str | OSError]]:
    """(path, hex digest or the OSError that stopped it), in input order, hashed in parallel.

    Paths go to the pool in groups (about GROUP_BYTES each when `sizes`, parallel to `paths`, is
    given), submitted lazily with a bounded window so 100,000 paths are never all in flight.
    """
    workers = workers or default_workers()
    window = workers * 3
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []
        for group in _groups(paths, sizes):
            pending.append(pool.submit(_hash_group, group, on_bytes))
            if len(pending) >= window:
                yield from pending.pop(0).result()
        for future in pending:
            yield from future.result()


# (hex digest, size, mtime_ns, inode) of an opened file, or (None, 0, 0, 0) with the error text
StatDigest = tuple[str | None, int, int, int, str | None]


def _digest_and_stat(path: str) -> StatDigest:
    """The digest and the fstat of the file that was read (the identity a hash cache may keep)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            st = os.fstat(fd)
            return sha256_fd(fd, st.st_size), st.st_size, st.st_mtime_ns, st.st_ino, None
        finally:
            os.close(fd)
    except OSError as exc:
        return None, 0, 0, 0, exc.strerror or str(exc)


def digest_part(paths: list[str]) -> list[StatDigest]:
    """`_digest_and_stat` of each path, here (one process)."""
    return [_digest_and_stat(path) for path in paths]


def hash_many(paths: list[str], *, parts: int | None = None,
              on_part: Callable[[int], None] | None = None) -> list[StatDigest]:
    """`_digest_and_stat` of every path, in input order, on `parts` processes (default: the cores).

    For many small files, where each hash holds the GIL for most of its few microseconds and
    threads only queue behind each other: the paths are dealt round-robin (big files spread
    evenly), parts 2.. run in forked children (`safety.child`), part 1 here. `on_part(files)`
    reports each part as it finishes.
    """
    parts = max(1, min(parts or os.cpu_count() or 1, 8, len(paths) // 1000 or 1))
    children = [in_child(digest_part, paths[k::parts]) for k in range(1, parts)]
    results: list[StatDigest | None] = [None] * len(paths)
    results[0::parts] = digest_part(paths[0::parts])
    if on_part:
        on_part(len(results[0::parts]))
    for k, child in enumerate(children, 1):
        part = child()
        results[k::parts] = part
        if on_part:
            on_part(len(part))
    return results  # type: ignore[return-value]
