"""A local folder as migration destination: fsync, re-read past the page cache, journal.

A target that was never the live library (`in_place`) is written under the final names: nothing
reads it before the switch publishes it, and the journal, not the name, says which files are
complete (a resume rewrites every file without a row). A target that has been the live library
gets temp name + fsync + rename, so a reader never sees a partial file there.

`read_back` first drops the file's cached pages (POSIX_FADV_DONTNEED after fsync, when they are
clean), so the bytes hashed come from the storage device, not from the copy we just wrote in memory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from mobius.media.destination import Stored
from mobius.safety.atomic import fsync_dir, temp_name_for, write_all
from mobius.safety.diskspace import disk_space
from mobius.safety.hashing import hash_uncached
from mobius.safety.leftovers import sweep
from mobius.safety.tree import DIR, FILE, LINK, walk


def _token(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}:{st.st_ino}"


def create_over(path: str | Path, flags: int, mode: int) -> int:
    """Create `path` (O_EXCL in `flags`), first removing what a killed run left under that name.

    Only for a target that was never live: whatever is there has no journal row, so it is ours to redo.
    """
    try:
        return os.open(path, flags, mode)
    except FileExistsError:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        return os.open(path, flags, mode)


class LocalWriter:
    """One file: under a temp name renamed at `publish`, or (`in_place`) under its final name."""

    def __init__(self, final: Path, rel: str, *, in_place: bool = False):
        self.final = final
        self.rel = rel
        self.in_place = in_place
        self.temp = final if in_place else temp_name_for(final)
        self.fd: int | None = create_over(self.temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)

    def write(self, data: memoryview) -> None:
        write_all(self.fd, data)

    def seal(self, mode: int, mtime_ns: int) -> None:
        os.fchmod(self.fd, mode)
        os.utime(self.fd, ns=(mtime_ns, mtime_ns))
        os.fsync(self.fd)

    def read_back(self, on_bytes: Callable[[int], None] | None = None) -> str:
        return hash_uncached(self.fd, on_bytes)

    def publish(self) -> Stored:
        st = os.fstat(self.fd)
        os.close(self.fd)
        self.fd = None
        if self.in_place:
            return Stored(self.rel, FILE, st.st_size, _token(st), ctime_ns=st.st_ctime_ns)
        os.replace(self.temp, self.final)
        # a rename moves the file's ctime: the journal keeps the one it has under its final name
        return Stored(self.rel, FILE, st.st_size, _token(st), ctime_ns=os.lstat(self.final).st_ctime_ns)

    def abort(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)


class LocalDestination:
    kind = "local"
    supports_links = True

    def __init__(self, root: Path, *, in_place: bool = False):
        self.root = root
        self.url = str(root)
        self.in_place = in_place  # the migration sets it when the target was never the live library

    def exists(self) -> bool:
        return self.root.exists()

    def listing(self) -> dict[str, Stored]:
        return dict(self.iter_listing())

    def iter_listing(self) -> Iterator[tuple[str, Stored]]:
        """The listing streamed, for comparisons that hold nothing per entry."""
        if not self.root.is_dir():
            return
        for e in walk(self.root):
            token = f"{e.mtime_ns}:{e.inode}" if e.kind == FILE else ""
            yield e.path, Stored(e.path, e.kind, e.size, token, e.link)

    def remove_temps(self) -> int:
        """The shared leftovers sweep over the whole target: temps of processes that are gone."""
        return len(sweep([self.root], recursive=True))

    def prepare(self) -> str:
        created = not self.root.exists()
        if created:
            self.root.mkdir(parents=True, mode=0o755)
            os.chmod(self.root, 0o755)
            fsync_dir(self.root.parent)
        probe = temp_name_for(self.root / "write-probe")
        probe.write_bytes(b"mobius")
        probe.unlink()
        mode = oct(self.root.stat().st_mode & 0o777)[2:]
        return f"{'created' if created else 'exists'}, mode {mode}, writable (probe file written and removed)"

    def space(self) -> tuple[int, int] | None:
        return disk_space(self.root)

    def make_dir(self, path: str, mode: int) -> Stored:
        folder = self.root / path
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            folder.unlink()
        folder.mkdir(exist_ok=True)
        if (folder.stat().st_mode & 0o7777) != mode:
            os.chmod(folder, mode)
        return Stored(path, DIR)

    def make_link(self, path: str, target: str) -> Stored:
        final = self.root / path
        temp = temp_name_for(final)
        os.symlink(target, temp)
        os.replace(temp, final)
        return Stored(path, LINK, link=target)

    def writer(self, path: str) -> LocalWriter:
        final = self.root / path
        if not self.in_place and final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        return LocalWriter(final, path, in_place=self.in_place)

    def read(self, path: str, on_bytes: Callable[[int], None] | None = None) -> str:
        fd = os.open(self.root / path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            return hash_uncached(fd, on_bytes)
        finally:
            os.close(fd)

    def remove(self, path: str) -> None:
        target = self.root / path
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()

    def sync(self, paths: set[str]) -> None:
        root = str(self.root)
        for folder in {f"{root}/{p}".rpartition("/")[0] for p in paths}:
            fsync_dir(folder)
