"""A local tree's fingerprint taken by GNU find: every entry's type, mode, size, mtime, inode and ctime
(nanoseconds) and name, hashed as find prints them.

Why find: a re-run of a completed migration is two stat walks, and `os.stat` from Python costs
about twice what the same walk costs in C (the stat result object, the per-name path lookup).
Both trees are walked at once, one `find` process each, while this process only hashes their
output. The hash follows find's order, which is the folders' on-disk order: stable while nothing
changes; if a file system reorders a folder anyway, the fingerprint differs and the caller falls
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

from mobius.safety.atomic import TEMP_PREFIX

PREFIX = "find:"
# type, permission bits, size, mtime and ctime (seconds.nanoseconds), inode, path; then the link text
FORMAT = "%y %m %s %T@ %C@ %i %P\\0%l\\0"
READ = 1 << 20


def _command(root: str) -> list[str] | None:
    find = shutil.which("find")
    if find is None:
        return None
    # -H: the root itself is followed when it is a symlink to a folder (a target given as a link), never a link
    # below it; without it find would list nothing under such a root, and an empty fingerprint hides every change
    return [find, "-H", root, "-mindepth", "1", "-name", f"{TEMP_PREFIX}*", "-prune", "-o", "-printf", FORMAT]


def start_fingerprint(root: str) -> Callable[[], str | None]:
    """Start walking `root` now (a `find` process); the returned function waits and gives the
    fingerprint, or None when there is none (no GNU find, or it failed)."""
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
        try:
            while chunk := proc.stdout.read(READ):
                digest.update(chunk)
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


def fingerprints(*roots: str) -> list[str | None]:
    """The fingerprints of several trees, walked at once."""
    pending = [start_fingerprint(root) for root in roots]
    return [wait() for wait in pending]
