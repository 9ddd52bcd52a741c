"""A fixed set of reusable buffers for the read/write pipelines.

Fresh 1-4 MiB `bytes` per read, with a dozen alive in queues at once, made glibc hand memory back
to the kernel and fault it in again: measured here, writing 1 GiB that way spent 2.3 s in the
kernel against 0.2 s with reused buffers. A pool also bounds memory: a pipeline stalls when every
buffer is in flight.
"""

from __future__ import annotations

import queue
from collections.abc import Callable


class BufferPool:
    def __init__(self, count: int, size: int):
        self.size = size
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(count):
            self._free.put(bytearray(size))

    def take(self, check: Callable[[], None] | None = None) -> bytearray:
        """A free buffer; `check` runs while waiting (it raises when the consumer died)."""
        while True:
            try:
                return self._free.get(timeout=0.2)
            except queue.Empty:
                if check is not None:
                    check()

    def give(self, buffer: bytearray) -> None:
        self._free.put(buffer)
