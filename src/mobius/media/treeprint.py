"""A local tree's fingerprint taken by GNU find: every entry's type, mode, size, mtime, inode and ctime
(nanoseconds) and name, hashed as find prints them.

Why find: a re-run of a completed migration is two stat walks, and `os.stat` from Python costs
about twice what the same walk costs in C (the stat result object, the per-name path lookup).
Both trees are walked at once, one `find` process each, while this process hashes their output
and, when the caller asks (`on_records`: the comparison with the journal, plan.py), reads every
entry's fields from the same output: one walk per tree gives both the fingerprint and the sums.
The hash follows find's order, which is the folders' on-disk order: stable while nothing changes;
if a file system reorders a folder anyway, the fingerprint differs and the caller falls
back to comparing with the journal (slower, never wrong).

Where GNU find is missing (or fails: a folder unreadable, the tree gone), there is no fingerprint
(None) and the caller uses the Python walk's (plan.py) or compares with the journal.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from typing import TypeAlias

from mobius.safety.atomic import TEMP_PREFIX

PREFIX = "find:"
# type, permission bits, size, mtime and ctime (seconds.nanoseconds), inode, path; then the link text
FORMAT = "%y %m %s %T@ %C@ %i %P\\0%l\\0"
READ = 1 << 20
# one entry as find printed it: "type mode size mtime ctime inode path" and the link text ("" unless a link)
Records: TypeAlias = list[tuple[str, str]]


def _command(root: str) -> list[str] | None:
    find = shutil.which("find")
    if find is None:
        return None
    # -H: the root itself is followed when it is a symlink to a folder (a target given as a link), never a link
    # below it; without it find would list nothing under such a root, and an empty fingerprint hides every change
    return [find, "-H", root, "-mindepth", "1", "-name", f"{TEMP_PREFIX}*", "-prune", "-o", "-printf", FORMAT]


def start_fingerprint(root: str, on_records: Callable[[Records], None] | None = None) -> Callable[[], str | None]:
    """Start walking `root` now (a `find` process); the returned function waits and gives the
    fingerprint, or None when there is none (no GNU find, or it failed).

    `on_records` (called on the reading thread, a list of whole entries at a time, in find's order)
    sees every entry the fingerprint hashes; if it raises, there is no fingerprint either (None), so
    a caller that gets one knows it saw the whole walk.
    """
    command = _command(root)
    if command is None:
        return lambda: None
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, env={**os.environ, "LC_ALL": "C"})  # one output format
    except OSError:
        return lambda: None
    digest = hashlib.blake2b(digest_size=16)
    failed: list[BaseException] = []

    def drain() -> None:  # its own thread: both walks' pipes are read at once, neither find waits on us
        tail = b""
        try:
            while chunk := proc.stdout.read(READ):
                digest.update(chunk)
                if on_records is not None:
                    tail = _split_records(tail + chunk, on_records)
            if tail:
                raise ValueError("find's output ended inside an entry")
        except BaseException as exc:  # noqa: BLE001 - no fingerprint then (see result)
            failed.append(exc)
            proc.kill()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()

    def result() -> str | None:
        try:
            reader.join()
        finally:
            proc.stdout.close()
            code = proc.wait()
        return f"{PREFIX}{digest.hexdigest()}" if code == 0 and not failed else None

    return result


def _split_records(data: bytes, on_records: Callable[[Records], None]) -> bytes:
    """Hand the whole entries in `data` (each is two NUL-terminated fields) to `on_records`; return the
    rest, the start of an entry the next chunk completes. Names are decoded as os.listdir decodes them."""
    end = data.rfind(b"\0")
    if end < 0:
        return data
    if data.count(b"\0", 0, end + 1) % 2:  # the last NUL ends an entry's first field, not the entry
        end = data.rfind(b"\0", 0, end)
        if end < 0:
            return data
    fields = data[:end].decode("utf-8", "surrogateescape").split("\0")
    on_records(list(zip(fields[0::2], fields[1::2], strict=True)))
    return data[end + 1:]
