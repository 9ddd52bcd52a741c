"""The C heap of a long run that passes many buffers of 128 KiB to a few MiB through its threads.

glibc serves a block of 128 KiB or more by its own mmap, and gives the pages back when it is freed;
but each such free raises the threshold to that block's size (up to 32 MiB), and from then on those
blocks come from the heap, whose free holes between long-lived objects stay resident. A backup's
batches (2 MiB of small files, pickled through a pipe) and its pack buffers are such blocks: a first
backup of 100,000 small files peaked at 114-120 MB with glibc's moving threshold, at 102-106 MB with it
fixed at its starting 128 KiB and at 107-110 MB fixed at 1 MiB (restic peaks at 114-129 MB on the same files).

The price is the system CPU of mapping and zeroing every block above the threshold anew, and of trimming the
heap's top: glibc stops moving its trim threshold too once the mmap threshold is set, so this sets it to twice
the mmap threshold, as glibc's own moving rule would (left at its 128 KiB, trimming alone cost 2-3 s of system
CPU on 1 GiB of media). Fixed at 128 KiB: 1.1-2 s more on the small files (of about 10 s of CPU); at 1 MiB with
the trim threshold at 2 MiB: 0.2-0.5 s more (caches dropped, 2-4 runs each, load 5-9). On 1 GiB of media files
every 1 MiB read is such a block: 3-3.5 s more of about 6 s, for a peak already 40 MB under restic's. So a
backup fixes it only when its files are small on average (`repository.FIXED_HEAP_BELOW`).
"""

from __future__ import annotations

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20  # blocks above it are mapped when allocated and unmapped when freed

_fixed = False


def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold at MMAP_THRESHOLD (it then stops moving, and larger blocks go back to the
    system when freed) and its trim threshold at twice that; once per process, inherited by forked workers.
    False where the C library is not glibc (nothing changes there)."""
    global _fixed
    if _fixed:
        return True
    import ctypes  # only here: 3-4 ms of start-up every other command would pay

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _fixed = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD) == 1
    return _fixed
