"""Small items travel in batches: one task per few hundred files, not one per file.

A task costs about 1-3 ms of scheduling on Dask and ~0.1 ms on a local pool (benchmarks/executor.py);
hashing a 4 KB file costs ~20 us. One task per file would be 99% overhead; a batch of DEFAULT_BATCH
files makes the overhead a few percent while leaving enough tasks to spread and to retry cheaply.
Media hashing adopts this by handing `hash_batch` (or its own batch function) to `run_items`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TypeVar

from mobius.config import Workspace
from mobius.safety.hashing import digest_part

DEFAULT_BATCH = 500

T = TypeVar("T")


def batches(values: Iterable[T], size: int = DEFAULT_BATCH) -> Iterator[list[T]]:
    """`values` in lists of at most `size`, in order, read lazily."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    iterator = iter(values)
    while chunk := list(islice(iterator, size)):
        yield chunk


def hash_batch(ws: Workspace, paths: list[str]) -> list[tuple[str, str]]:
    """sha256 of each file (safety.hashing.sha256_file); an unreadable file gives "error: <reason>"."""
    from mobius.safety.hashing import sha256_file

    digests = []
    for path in paths:
        try:
            digests.append((path, sha256_file(Path(path))))
        except OSError as exc:
            digests.append((path, f"error: {exc.strerror or exc}"))
    return digests


def stat_digest_batch(ws: Workspace, paths: list[str]) -> list[tuple[str | None, int, int, int, str | None]]:
    """Per path (digest, size, mtime_ns, inode, error) of the file as opened and read: what media hashing
    needs (the stat is the one a hash cache keeps); an unreadable file has digest None and its reason."""
    return digest_part(paths)
