"""What a library folder holds: files, folders and symlinks, read without following any link.

The walk never follows a symlink (a link is an entry of its own, its target kept as text), so a
link pointing outside the library is never read through. Backups and media migrations both list
the library through it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mobius.safety.atomic import TEMP_PREFIX

FILE, DIR, LINK, OTHER = "file", "dir", "link", "other"


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry under a library root; `path` is relative, '/'-separated."""

    path: str
    kind: str
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    mode: int = 0
    link: str | None = None
    ctime_ns: int = 0  # with size, mtime and inode: what lets a backup trust a file unchanged without reading it

    @property
    def identity(self) -> tuple[int, int, int]:
        """What must stay equal for a cached hash of this file to still hold."""
        return (self.size, self.mtime_ns, self.inode)


def _kind(st_mode: int) -> str:
    if stat.S_ISREG(st_mode):
        return FILE
    if stat.S_ISDIR(st_mode):
        return DIR
    if stat.S_ISLNK(st_mode):
        return LINK
    return OTHER


def _scan(root: Path, rel_dir: str, include_temps: bool) -> list[Entry]:
    """The entries of one folder, names sorted, each lstat-ed (never followed)."""
    folder = os.path.join(root, rel_dir) if rel_dir else str(root)
    with os.scandir(folder) as it:
        items = sorted(it, key=lambda e: e.name)
    entries = []
    for item in items:
        if not include_temps and item.name.startswith(TEMP_PREFIX):
            continue
        rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
        st = item.stat(follow_symlinks=False)
        kind = _kind(st.st_mode)
        link = os.readlink(item.path) if kind == LINK else None
        entries.append(Entry(rel, kind, st.st_size if kind == FILE else 0, st.st_mtime_ns, st.st_ino,
                             stat.S_IMODE(st.st_mode), link, st.st_ctime_ns))
    return entries


def walk(root: Path, *, include_temps: bool = False,
         prune: Callable[[Entry], bool] | None = None, threads: int = 1) -> Iterator[Entry]:
    """Every entry under `root` (not `root` itself), parents before children, names sorted.

    Mobius temp files (a killed run's leftovers) are skipped unless `include_temps`; a folder for
    which `prune` returns True is neither listed nor entered. With `threads` > 1 the folders next
    in line are read and lstat-ed ahead by that many threads (the syscalls release the GIL, and on a
    cold cache their waits overlap); the entries come out in exactly the same order either way.
    """
    if threads > 1:
        yield from _walk_ahead(root, include_temps, prune, threads)
        return
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        subdirs = []
        for entry in _scan(root, rel_dir, include_temps):
            if entry.kind == DIR and prune is not None and prune(entry):
                continue
            yield entry
            if entry.kind == DIR:
                subdirs.append(entry.path)
        stack.extend(reversed(subdirs))


def _walk_ahead(root: Path, include_temps: bool, prune: Callable[[Entry], bool] | None,
                threads: int) -> Iterator[Entry]:
    """`walk`'s order, with the next folders on its stack scanned by a pool (at most 2 per thread ahead,
    so memory stays a few folders' entries); a folder not yet scanned when its turn comes is scanned here."""
    ahead = 2 * threads
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="walk") as pool:
        stack: list[list] = [["", None]]  # [relative folder, Future of its scan or None]
        try:
            while stack:
                rel_dir, future = stack.pop()
                entries = future.result() if future is not None else _scan(root, rel_dir, include_temps)
                subdirs = []
                for entry in entries:
                    if entry.kind == DIR and prune is not None and prune(entry):
                        continue
                    yield entry
                    if entry.kind == DIR:
                        subdirs.append(entry.path)
                stack.extend([rel, None] for rel in reversed(subdirs))
                for item in stack[-ahead:]:
                    if item[1] is None:
                        item[1] = pool.submit(_scan, root, item[0], include_temps)
        finally:
            for _, future in stack:
                if future is not None:
                    future.cancel()


def files(root: Path) -> Iterator[Entry]:
    """Only the regular files under `root`."""
    return (entry for entry in walk(root) if entry.kind == FILE)


def file_names(root: Path) -> list[str]:
    """Relative paths of the regular files under `root`, sorted, without a stat per file.

    The directory's entry type (d_type) says what is a file; no link is followed. For hashing
    many small files, where the stat that `walk` makes for each entry is a third of the cost
    (the hashing itself fstat()s the file it opened).
    """
    names: list[str] = []
    stack = [("", str(root))]
    while stack:
        rel_dir, folder = stack.pop()
        with os.scandir(folder) as it:
            for item in it:
                name = item.name
                if name.startswith(TEMP_PREFIX):
                    continue
                if item.is_file(follow_symlinks=False):
                    names.append(f"{rel_dir}/{name}" if rel_dir else name)
                elif item.is_dir(follow_symlinks=False):
                    stack.append((f"{rel_dir}/{name}" if rel_dir else name, item.path))
    names.sort()
    return names


def points_outside(root: Path, entry: Entry) -> bool:
    """True when a symlink's target resolves outside `root` (it is then never read through)."""
    assert entry.link is not None
    base = root / entry.path
    target = Path(entry.link) if os.path.isabs(entry.link) else base.parent / entry.link
    resolved = Path(os.path.normpath(target))
    return not resolved.is_relative_to(Path(os.path.normpath(root)))


def undecodable(entries: list[Entry] | list[str]) -> list[str]:
    """Names that are not valid UTF-8 (manifests, the journal and S3 keys need text), shown escaped."""
    bad = []
    for entry in entries:
        path = entry if isinstance(entry, str) else entry.path
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            bad.append(path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
    return bad
