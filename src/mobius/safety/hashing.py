"""SHA-256 of files, fast: hashlib (OpenSSL) with large buffers, threads across cores.

hashlib releases the GIL on large buffers, so a thread pool hashes on every core.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CHUNK = 1 << 20


def sha256_file(path: str | Path, *, on_bytes: Callable[[int], None] | None = None) -> str:
    """Hex sha256 of a file's contents."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
            if on_bytes:
                on_bytes(count)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def default_workers() -> int:
    return max(2, min(8, os.cpu_count() or 2))


def hash_files(paths: Iterable[Path], *, workers: int | None = None,
               on_bytes: Callable[[int], None] | None = None) -> Iterator[tuple[Path, str | OSError]]:
    """(path, hex digest or the OSError that stopped it), in input order, hashed in parallel.

    Submits lazily with a bounded window so 100,000 paths are never all in flight at once.
    """
    workers = workers or default_workers()
    window = workers * 4

    def one(path: Path) -> tuple[Path, str | OSError]:
        try:
            return path, sha256_file(path, on_bytes=on_bytes)
        except OSError as exc:
            return path, exc

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []
        for path in paths:
            pending.append(pool.submit(one, path))
            if len(pending) >= window:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()
