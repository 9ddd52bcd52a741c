"""The backup repository: snapshots of the library, settings and database, stored once by content.

Layout inside the backups folder (beside today's single-file archives, which stay readable):

    snapshots/<id>.jsonl            one file per snapshot (snapshot.py), written last
    packs/<aa>/<sha256>.tar.zst     content, tar + zstd, named by the sha256 of the pack (pack.py)
    index/<sha256>.json             which blobs each pack holds (index.py)
    .mobius-repository.lock         flock: shared by backups, exclusive for prune

Content is addressed by sha256 at file level: a file whose bytes the repository already holds
costs one entry line. A file whose size, mtime, inode and ctime equal the parent snapshot's is
trusted unchanged without being read (restic's and borg's rule), unless its mtime is within a
second of when the parent started (it may have changed again in the same clock tick: git's
"racily clean" rule) or `force_read`; the parent's lines are read alongside the new listing
(parent.py), and such a file's line is the parent's, copied.

Order of writes, so that a crash at any point leaves every snapshot restorable: a pack is
fsynced, re-read from the device and checked (on a worker thread, while the next pack fills), renamed,
then indexed (both on the main thread, in pack order); the snapshot is written
(atomically) only after every pack it references is indexed. Backups hold the lock shared (two
run at once), prune holds it exclusive: a prune never removes what a running backup is about
to reference.
"""

from __future__ import annotations

import binascii
import collections
import contextlib
import datetime as dt
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobius.backup.crypto import PLAIN, RepositoryKeys
from mobius.backup.frames import FrameChooser
from mobius.backup.index import PackBlobs, RepositoryIndex, indexed_pack_names, write_index
from mobius.backup.manifest import FILE, LIBRARY_ROOT, ManifestEntry
from mobius.backup.object_library import ObjectLibrary, ObjectRef
from mobius.backup.pack import PackDamaged, PackInfo, PackWriter, SealedPack, check_pack, pack_path
from mobius.backup.parent import LIBRARY_PREFIX, PATH_START, TYPE_AFTER_PATH, ParentSnapshot
from mobius.backup.snapshot import (
    SNAPSHOT_ID,
    SNAPSHOT_SUFFIX,
    EntrySpool,
    SnapshotDamaged,
    SnapshotEntry,
    SnapshotHeader,
    read_header,
    snapshot_path,
    write_snapshot,
)
from mobius.backup.tree import Listing, changed_while_read, open_as_listed, walk_tree
from mobius.errors import InputError, VerificationError
from mobius.faults import kill_at
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress
from mobius.safety.atomic import TEMP_PREFIX, fsync_dir
from mobius.safety.collector import fewer_collections
from mobius.safety.diskspace import disk_space, require_free_space
from mobius.safety.heap import fix_mmap_threshold
from mobius.safety.leftovers import sweep
from mobius.safety.lock import FileLock
from mobius.safety.stamps import new_id, utc_iso
from mobius.safety.workers import ForkedWorkers, can_fork_workers

LOCK_NAME = ".mobius-repository.lock"
LOCK_WAIT = 600
SMALL_FILE = 4 << 20  # read whole into memory; larger files are hashed, then streamed into the pack if new
READ_BYTES = 256 << 10  # listing lines read at once
READERS = 4  # threads looking at files ahead of the pack writer
READ_AHEAD = 16  # files a reader has asked the kernel for before it reads the first (_read_files)
READER_PROCESSES = 4  # or worker processes reading them, for a first snapshot of many files (_reader_processes)
PROCESSES_FROM = 256  # files
BATCH_FILES = 64
# to a reader process: each hand-over writes to the pool's pipes, a system call during which the main thread's
# interpreter lock goes to another thread (64 files a batch: 1,567 writes took 3.7 s of its 9 s at 100,000 files);
# 128 and 512 took the same time (7.3-8.5 s), but WINDOW batches of 512 held 15 MB more at the peak (132 MB)
PROCESS_BATCH_FILES = 128
BATCH_BYTES = 2 << 20  # 4 MiB: a 1 GiB media backup peaked at 128-130 MB, 2 MiB: 108 MB (restic 116-151)
FIXED_HEAP_BELOW = 256 << 10  # average file size under which glibc's mmap threshold is fixed (safety.heap)
WINDOW = 8  # batches in flight: about 16 MiB of small files read ahead (16 batches: above restic's peak on media)
TAR_OVERHEAD = 1024


@dataclass(frozen=True)
class Repository:
    """A repository in a local folder (the workspace's backups folder by default)."""

    root: Path
    keys: RepositoryKeys = field(default=PLAIN, compare=False, repr=False)

    @property
    def packs(self) -> Path:
        return self.root / "packs"

    @property
    def index(self) -> Path:
        return self.root / "index"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    def lock(self, *, exclusive: bool, what: str, timeout: float = LOCK_WAIT) -> FileLock:
        return FileLock(self.root / LOCK_NAME, timeout=timeout, what=what, shared=not exclusive)

    def clean_leftovers(self) -> list[Path]:
        """Temp packs, index and snapshot files of killed processes (never a live process's); also in the packs'
        subfolders, where a copy killed mid-upload leaves its temp file."""
        subfolders = ([Path(e.path) for e in os.scandir(self.packs) if e.is_dir() and not e.name.startswith(".")]
                      if self.packs.is_dir() else [])
        return sweep([self.root, self.packs, *subfolders, self.index, self.snapshots])

    def snapshot_ids(self) -> list[str]:
        """Every snapshot id, oldest first (ids sort by their UTC stamp)."""
        if not self.snapshots.is_dir():
            return []
        return sorted(name[:-len(SNAPSHOT_SUFFIX)] for name in os.listdir(self.snapshots)
                      if name.endswith(SNAPSHOT_SUFFIX) and SNAPSHOT_ID.match(name[:-len(SNAPSHOT_SUFFIX)]))

    def headers(self) -> list[SnapshotHeader]:
        """Every readable snapshot's header, oldest first (by when it started: two backups may share a second)."""
        headers = []
        for snapshot_id in self.snapshot_ids():
            with contextlib.suppress(OSError, SnapshotDamaged):
                headers.append(read_header(self.snapshot_file(snapshot_id), self.keys))
        return sorted(headers, key=lambda h: (h.started_ns, h.id))

    def snapshot_file(self, snapshot_id: str) -> Path:
        return snapshot_path(self.snapshots, snapshot_id)

    def resolve(self, name: str) -> str | None:
        """A snapshot id from an id, a unique prefix of one, its file name or `latest`; None when none matches."""
        if name == "latest":
            newest = self.headers()
            return newest[-1].id if newest else None
        name = Path(str(name)).name.removesuffix(SNAPSHOT_SUFFIX)
        if not name or not name[0].isdigit():
            return None
        ids = self.snapshot_ids()
        if name in ids:
            return name
        matches = [i for i in ids if i.startswith(name)]
        if len(matches) > 1:
            raise InputError(f"{name!r} matches {len(matches)} snapshots", hint="give more of the snapshot id")
        return matches[0] if matches else None

    def require(self, name: str) -> str:
        found = self.resolve(name)
        if found is None:
            raise InputError(f"no snapshot {name!r} in {self.location}",
                             hint="`mobius backup list` shows the snapshots")
        return found

    @property
    def location(self) -> str:
        """Where the repository is, as a person names it (the folder; a bucket's URL for a cached one)."""
        return str(self.root)

    def pack_size(self, name: str) -> int | None:
        """The size of pack `name` in the repository, None when it is not there."""
        try:
            return pack_path(self.packs, name).stat().st_size
        except FileNotFoundError:
            return None

    def orphan_packs(self, index: RepositoryIndex | set[str]) -> list[Path]:
        """Pack files no index file names (a backup killed between a pack's rename and its index); `index` is
        the loaded index or the names of the indexed packs (`indexed_pack_names`)."""
        indexed = index.packs if isinstance(index, RepositoryIndex) else index
        orphans = []
        if self.packs.is_dir():
            for sub in os.scandir(self.packs):
                if sub.is_dir() and not sub.name.startswith("."):
                    for entry in os.scandir(sub.path):
                        name = entry.name.removesuffix(".tar.zst")
                        if entry.name.endswith(".tar.zst") and name not in indexed:
                            orphans.append(Path(entry.path))
        return orphans


@dataclass
class SnapshotResult:
    """What `create_snapshot` made (also what `backup create --json` prints for a snapshot)."""

    id: str
    path: Path
    repository: Path
    parent: str | None
    files: int
    bytes: int
    new_files: int
    new_bytes: int
    reused_files: int
    reused_bytes: int
    read_files: int
    stored_bytes: int
    packs: list[str]
    seconds: float
    dirs: int = 0
    symlinks: int = 0
    extras: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    verified: bool = True
    removed_leftovers: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "snapshot", "id": self.id, "snapshot": self.id, "path": self.path,
                "repository": self.repository, "parent": self.parent, "files": self.files, "bytes": self.bytes,
                "dirs": self.dirs, "symlinks": self.symlinks, "new_files": self.new_files,
                "new_bytes": self.new_bytes, "reused_files": self.reused_files, "reused_bytes": self.reused_bytes,
                "read_files": self.read_files, "stored_bytes": self.stored_bytes, "packs": self.packs,
                "seconds": round(self.seconds, 3), "extras": self.extras, "skipped": self.skipped,
                "verified": self.verified, "removed_leftovers": self.removed_leftovers}


class PackStore:
    """New blobs into packs, each sealed before anything names it: fsynced, re-read from the device and
    checked, renamed to its sha256, indexed.

    A full pack's last bytes are written on the caller's thread; its fsync (and encryption) and its check
    from the device then run on one worker thread while the next pack fills (on media a pack's check cost
    as much as writing it, and the two waited on each other). The caller publishes it (the rename, then the
    index file) when the next pack is full or at `finish`: every rename happens on the caller's thread, in
    pack order, so the n-th rename of a run is the same in every run (the kill tests aim at each one).
    Whatever the worker raises, of any type, is raised by the next `add`/`finish`; the pack is removed and
    nothing indexed it."""

    def __init__(self, repo: Repository, index: RepositoryIndex):
        self.repo = repo
        self.index = index
        self.writer: PackWriter | None = None
        self.written: list[PackInfo] = []
        self._worker: ThreadPoolExecutor | None = None
        self._sealing: tuple[PackWriter, Future[SealedPack]] | None = None
        self._frames = FrameChooser()  # shared by the packs in turn (PackWriter says why)
        self._group_frames = FrameChooser()

    def __contains__(self, sha256: str) -> bool:
        return (sha256 in self.index or (self.writer is not None and sha256 in self.writer)
                or (self._sealing is not None and sha256 in self._sealing[0]))

    def _open(self) -> PackWriter:
        if self.writer is None:
            self.writer = PackWriter(self.repo.packs, keys=self.repo.keys, frames=self._frames,
                                     group_frames=self._group_frames)
        return self.writer

    def add(self, sha256: str, data: bytes) -> None:
        """`data` whose sha256 the caller computed from these bytes."""
        self._open().add(sha256, data)
        kill_at("backup:pack-open")
        self._rotate()

    def add_stream(self, sha256: str, size: int, chunks: Iterator[bytes]) -> None:
        self._open().add_stream(sha256, size, chunks)
        kill_at("backup:pack-open")
        self._rotate()

    def stores(self, head: bytes) -> bool:
        """Whether a blob that starts with `head` is stored as is (`add_unhashed` takes it)."""
        return self._frames.kind(head) == "stored" and not self._open().direct

    def add_unhashed(self, size: int, chunks: Iterator[bytes]) -> tuple[str, bool]:
        """A blob zstd cannot shrink, hashed as it is written: (sha256, whether it was new)."""
        sha256, added = self._open().add_unhashed(size, chunks, self.__contains__)
        kill_at("backup:pack-open")
        self._rotate()
        return sha256, added

    def _rotate(self) -> None:
        if self.writer is not None and self.writer.full:
            self._seal()

    def _seal(self) -> None:
        """End the open pack and hand it to the worker, once the pack before it is published."""
        writer, self.writer = self.writer, None
        try:
            writer.end()
            self._publish_sealed()
        except BaseException:
            writer.abort()
            raise
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-seal")
        self._sealing = (writer, self._worker.submit(_sealed_and_checked, writer, self.repo.keys))

    def _publish_sealed(self) -> None:
        """Wait for the pack on the worker; rename it and write its index file (or remove it and raise)."""
        if self._sealing is None:
            return
        writer, future = self._sealing
        self._sealing = None
        try:
            sealed = future.result()
        except BaseException:
            writer.abort()
            raise
        try:
            kill_at("backup:pack-checked")
            info = writer.publish(sealed)
            kill_at("backup:pack-renamed")
            write_index(self.repo.index, info, self.repo.keys)
        except BaseException:
            sealed.discard()  # once renamed, an unindexed pack is left to the next run's orphan sweep: the same
            raise  # bytes may be a pack another backup indexed under this name
        kill_at("backup:pack-indexed")
        self.index.add(info)
        self.written.append(info)

    def finish(self) -> None:
        """Seal the open pack and publish every pack: after it, everything added is indexed."""
        try:
            if self.writer is not None:
                if self.writer.empty:
                    self.writer.abort()
                    self.writer = None
                else:
                    self._seal()
            self._publish_sealed()
        finally:
            self._stop_worker()

    def abort(self) -> None:
        """Remove the open pack and the one being sealed (waiting for the worker to let go of it)."""
        if self.writer is not None:
            self.writer.abort()
            self.writer = None
        if self._sealing is not None:
            writer, future = self._sealing
            self._sealing = None
            with contextlib.suppress(BaseException):
                future.result().discard()
            writer.abort()
        self._stop_worker()

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None


def _sealed_and_checked(writer: PackWriter, keys: RepositoryKeys) -> SealedPack:
    """On the worker: fsync (and encrypt) the pack, then re-read it from the device and check every blob's
    header and sha256 and the pack's own sha256; raises VerificationError (the pack removed) when it differs."""
    sealed = writer.seal()
    try:
        kill_at("backup:pack-sealed")
        sealed.compact = PackBlobs.from_rows(sealed.name, sealed.rows())  # a dict of 25,000 locations: 8 MB
        written = (sealed.name, sealed.outside) if sealed.outside is not None else None
        check = check_pack(sealed.stored, sealed.compact, keys=keys, written=written)
        if check.damaged or check.sha256 != sealed.name or check.size != sealed.size:
            problems = [f"{sha}: {why}" for sha, why in list(check.damaged.items())[:20]]
            if check.sha256 != sealed.name:
                problems.append(f"the pack reads back with sha256 {check.sha256}")
            raise VerificationError(f"backup: pack {sealed.name} does not read back as written",
                                    hint="check the disk under the backups folder; nothing was recorded",
                                    details=problems)
    except BaseException:
        sealed.discard()
        raise
    return sealed


def _pread_chunks(fd: int, size: int, local: str | Path, first: bytes = b"") -> Iterator[bytes]:
    """The file's bytes in 1 MiB reads (starting with `first`, read before); a short file raises."""
    if first:
        yield first
    position = len(first)
    while position < size:
        data = os.pread(fd, min(1 << 20, size - position), position)
        if not data:
            raise changed_while_read(local)
        position += len(data)
        yield data


@dataclass(slots=True)
class _Look:
    """What a reader found: identity, and sha256 + bytes of a small file it read (`unchanged`: the parent's
    sha256, nothing read; a large file: neither, it is read on the main thread)."""

    ino: int  # 0 and 0 for an object (its ETag is its identity)
    ctime_ns: int
    sha: str | None
    data: bytes | None
    unchanged: bool

    @property
    def identity(self) -> tuple[int, int]:
        return self.ino, self.ctime_ns


_Read = tuple[str | None, bytes | None, int, int]  # sha256 and bytes (None for a large file), inode, ctime


def _read_files(files: list[tuple[str | Path, int, int]]) -> list[_Read]:
    """Files (path, size, mtime_ns) as the walk listed them: (sha256, bytes) when small, (None, None) when large
    (read later, on the main thread), then inode and ctime. Refuses a file that changes under us.

    Each small file's read is asked of the kernel (POSIX_FADV_WILLNEED) READ_AHEAD files before it is read:
    the disk then serves those reads together instead of one request at a time. Measured on 100,000 files of
    1-4 KB, caches dropped: 4 threads reading them 7.0 s -> 4.5 s; one thread 19.7 s -> 4.2 s."""
    kill_at("backup:read")  # per batch: in a reader process, kills (or crashes) that process alone
    done: list[_Read] = []
    opened: collections.deque[tuple[int, os.stat_result, tuple[str | Path, int, int]]] = collections.deque()
    try:
        for item in files:
            fd, before = open_as_listed(*item)
            opened.append((fd, before, item))
            if item[1] < SMALL_FILE:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            if len(opened) > READ_AHEAD:
                done.append(_read_opened(*opened.popleft()))
        while opened:
            done.append(_read_opened(*opened.popleft()))
    finally:
        for fd, _, _ in opened:
            os.close(fd)
    return done


def _read_opened(fd: int, before: os.stat_result, item: tuple[str | Path, int, int]) -> _Read:
    """`_read_files` for one file it opened (closed here)."""
    local, size, mtime_ns = item
    try:
        if size >= SMALL_FILE:
            return None, None, before.st_ino, before.st_ctime_ns
        data = os.read(fd, size + 1)
        if len(data) != size:
            raise changed_while_read(local)
        digest = hashlib.sha256(data).hexdigest()
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (size, mtime_ns, before.st_ctime_ns):
            raise changed_while_read(local)
        return digest, data, before.st_ino, before.st_ctime_ns
    finally:
        os.close(fd)


class _FileReaders:
    """In a worker process (safety/workers.py): `_read_files` of a batch."""

    @staticmethod
    def read(batch: list[tuple[str, int, int]]) -> list[_Read]:
        return _read_files(batch)


class _Run:
    """One create: the repository, its index, the parent, the counts; `store` handles one file."""

    def __init__(self, repo: Repository, index: RepositoryIndex, parent: ParentSnapshot, force_read: bool,
                 progress: Progress, objects: ObjectLibrary | None = None):
        self.objects = objects
        self.repo = repo
        self.index = index
        self.parent = parent
        self.force_read = force_read
        self.progress = progress
        self.packs = PackStore(repo, index)
        self.counts = {"new_files": 0, "new_bytes": 0, "reused_files": 0, "reused_bytes": 0, "read_files": 0}

    def look(self, path: str, local: str | Path, size: int, mtime_ns: int, *, force: bool = False) -> _Look:
        """The file's identity, and for a small file that changed its bytes and sha256. Refuses a file that
        changes under us."""
        known = self.look_unread(path, local, size, mtime_ns, force=force)
        return known if known is not None else _read_look(_read_files([(local, size, mtime_ns)])[0])

    def look_unread(self, path: str, local: str | Path, size: int, mtime_ns: int, *, force: bool = False,
                    ) -> _Look | None:
        """Runs on a reader thread: the look at an object, or at a file the parent shows unchanged (not opened);
        None: the local file must be read (`_read_files`)."""
        if isinstance(local, ObjectRef):
            return self._look_object(path, local, size, mtime_ns, force)
        if not (self.force_read or force) and path in self.parent.files:  # else nothing to compare it with
            try:
                st = os.lstat(local)
            except OSError as exc:
                raise VerificationError(f"cannot read {local}: {exc.strerror}", hint="check its permissions") from None
            sha = self.parent.unchanged(path, st) if st.st_size == size and st.st_mtime_ns == mtime_ns else None
            if sha is not None and stat.S_ISREG(st.st_mode):
                # not opened: size, mtime, inode and ctime as the parent saw them
                return _Look(st.st_ino, st.st_ctime_ns, sha, None, True)
        return None

    def _look_object(self, path: str, ref: ObjectRef, size: int, mtime_ns: int, force: bool) -> _Look:
        sha = None if self.force_read or force else self.parent.unchanged_object(path, size, mtime_ns, ref.etag)
        if sha is not None:
            return _Look(0, 0, sha, None, True)
        if size >= SMALL_FILE:
            return _Look(0, 0, None, None, False)
        data = self.objects.read(ref, size)
        return _Look(0, 0, hashlib.sha256(data).hexdigest(), data, False)

    def store(self, path: str, local: str | Path | ObjectRef, size: int, mtime_ns: int,
              seen: _Look) -> tuple[str, _Look]:
        """On the main thread, in listing order: the file's blob sha256, stored if the repository lacks it
        (and what was seen of it: its identity)."""
        if seen.unchanged:
            if seen.sha in self.packs:
                self._count("reused", size)
                self.progress.advance(size)
                return seen.sha, seen
            seen = self.look(path, local, size, mtime_ns, force=True)  # its blob is gone: read it again
        self.counts["read_files"] += 1
        if seen.data is not None:
            sha = seen.sha
            if sha in self.packs:
                self._count("reused", size)
            else:
                self.packs.add(sha, seen.data)
                self._count("new", size)
        elif isinstance(local, ObjectRef):
            sha = self._store_large_object(local, size)
        else:
            sha = self._store_large(local, size, mtime_ns, seen.identity, new_path=path not in self.parent.files)
        self.progress.advance(size)
        return sha, seen

    def _store_large_object(self, ref: ObjectRef, size: int) -> str:
        """Hashed as it streams; streamed again into a pack only when new (never staged on local disk)."""
        sha = self.objects.sha256(ref, size)
        if sha in self.packs:
            self._count("reused", size)
            return sha
        try:
            self.packs.add_stream(sha, size, self.objects.chunks(ref, size))
        except PackDamaged:
            raise VerificationError(f"{ref.key} changed while it was being backed up",
                                    hint="stop whatever writes to the bucket, then run the backup again") from None
        self._count("new", size)
        self.objects.check_unchanged(ref)  # read in ranges: the same object all along (a GET of a small one is)
        return sha

    def _store_large(self, local: str | Path, size: int, mtime_ns: int, seen: tuple[int, int], *,
                     new_path: bool) -> str:
        """A file the parent did not have (`new_path`) whose bytes zstd cannot shrink (media) is read once:
        hashed as it is written into a pack, taken back if the repository turns out to hold it. Any other is
        hashed in one pass and streamed into a pack in a second only when new (the copy is hashed again)."""
        fd = os.open(local, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            identity = (seen[0], size, mtime_ns, seen[1])
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            st = os.fstat(fd)
            if (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) != identity:
                raise changed_while_read(local)
            first = next(_pread_chunks(fd, size, local))
            if new_path and not self.force_read and self.packs.stores(first):
                sha, added = self.packs.add_unhashed(size, _pread_chunks(fd, size, local, first))
                self._count("new" if added else "reused", size)
            else:
                digest = hashlib.sha256()
                for chunk in _pread_chunks(fd, size, local, first):
                    digest.update(chunk)
                sha = digest.hexdigest()
                if sha in self.packs:
                    self._count("reused", size)
                else:
                    try:
                        self.packs.add_stream(sha, size, _pread_chunks(fd, size, local))
                    except PackDamaged:  # its bytes differ from what was hashed a moment ago
                        raise changed_while_read(local) from None
                    self._count("new", size)
            st = os.fstat(fd)
            if (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) != identity:
                raise changed_while_read(local)
            return sha
        finally:
            os.close(fd)

    def trusted(self, files: int, size: int) -> None:
        """Files the parent's lines show unchanged, their blobs indexed: reused, not read."""
        self.counts["reused_files"] += files
        self.counts["reused_bytes"] += size
        self.progress.advance(size)

    def _count(self, kind: str, size: int) -> None:
        self.counts[f"{kind}_files"] += 1
        self.counts[f"{kind}_bytes"] += size


def _local(source: Path | ObjectLibrary, extra_files: dict[str, Path], member: str) -> str | Path | ObjectRef:
    if member in extra_files:
        return extra_files[member]
    if isinstance(source, ObjectLibrary):
        return source.refs[member]
    rest = member.partition("/")[2]
    return f"{source}/{rest}" if rest else source


def write_snapshot_of(repo: Repository, source: Path | ObjectLibrary, *, extra_files: dict[str, Path] | None = None,
                      force_read: bool = False, progress: Progress | None = None,
                      snapshot_id: str | None = None) -> SnapshotResult:
    """Snapshot the folder `source` (or a library in object storage) as `library/...`, plus `extra_files`,
    into the repository, under `snapshot_id` when the caller chose it first (a one-step plan records it
    before the work, so its undo knows which snapshot to forget even after a kill), else a new id.

    Every pack it wrote was checked from the device and every blob it references is indexed before
    the snapshot file is written; a failure at any point leaves no snapshot and no index entry for an
    unchecked pack (a killed run's temp files are removed by the next command).
    """
    progress = progress or NoProgress()
    log = get_logger()
    started = time.monotonic()
    started_ns = time.time_ns()
    objects = source if isinstance(source, ObjectLibrary) else None
    source = objects.url if objects else Path(source).expanduser().resolve()
    extra_files = {name: Path(path) for name, path in (extra_files or {}).items()}
    if repo.keys.encrypts:
        repo.keys.require_identity()
    repo.root.mkdir(parents=True, exist_ok=True)
    removed = _clean_if_alone(repo)
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=repo.root) as scratch, \
            fewer_collections():  # safety.collector says why
        listing = Listing(Path(scratch) / "listing.jsonl", identities=True)
        if objects is not None:
            objects.walk(listing, extra_files)
        else:
            walk_tree(source, listing, exclude=repo.root, extra_files=extra_files)
        kill_at("backup:walked")
        if listing.files and listing.bytes < listing.files * FIXED_HEAP_BELOW:
            fix_mmap_threshold()  # the batches' buffers go back to the system when freed (safety.heap says why)
        with repo.lock(exclusive=False, what=f"a prune of {repo.root}"), contextlib.ExitStack() as stack:
            index = RepositoryIndex.load(repo.index, repo.keys)
            parent = ParentSnapshot.load(repo, str(source)) if objects else ParentSnapshot.open(repo, str(source))
            stack.callback(parent.close)
            overhead = listing.entries * TAR_OVERHEAD
            if disk_space(repo.root)[0] < listing.bytes + overhead:  # else every byte fits: no second pass
                require_free_space(repo.root, _bytes_to_read(listing, repo, str(source)) + overhead,
                                   what=f"a snapshot of {source}")
            run = _Run(repo, index, parent, force_read, progress, objects)
            processes = _reader_processes(run, listing)
            if processes is not None:
                stack.enter_context(processes)
            spool = EntrySpool(Path(scratch) / "entries.jsonl")
            referenced = _References(repo, index, run.packs)
            progress.start("backup", total=listing.bytes, unit="bytes")
            try:
                for item in _looked(run, listing, objects or source, extra_files, referenced, processes):
                    if item.__class__ is bytes:  # finished lines: folders, links, files trusted unchanged
                        spool.add_lines(item)
                        continue
                    entry, local, seen = item
                    sha, seen = run.store(entry.path, local, entry.size, entry.mtime_ns, seen)
                    referenced.add(sha, entry.path)
                    if isinstance(local, ObjectRef):
                        spool.add(SnapshotEntry(entry.path, FILE, entry.size, entry.mode, entry.mtime_ns, None,
                                                sha, etag=local.etag))
                    else:
                        spool.add(SnapshotEntry(entry.path, FILE, entry.size, entry.mode, entry.mtime_ns, None,
                                                sha, *seen.identity))
                run.packs.finish()
            except BaseException:
                run.packs.abort()
                spool.close()
                progress.finish()
                raise
            spool.close()
            progress.finish()
            referenced.check()
            snapshot_id = snapshot_id or new_id()
            header = SnapshotHeader(
                id=snapshot_id, created=utc_iso(), source=str(source), parent=parent.id, started_ns=started_ns,
                extras=listing.extras, entries=listing.entries, files=listing.files, dirs=listing.dirs,
                symlinks=listing.symlinks, bytes=listing.bytes, packs=[p.name for p in run.packs.written],
                stored_bytes=sum(p.size for p in run.packs.written), seconds=round(time.monotonic() - started, 3),
                **run.counts)
            kill_at("backup:before-snapshot")
            repo.snapshots.mkdir(mode=0o700, exist_ok=True)
            write_snapshot(repo.snapshot_file(snapshot_id), header, spool.path, repo.keys)
            fsync_dir(repo.root)
            kill_at("backup:snapshot-written")
    result = SnapshotResult(id=snapshot_id, path=repo.snapshot_file(snapshot_id), repository=repo.root,
                            parent=parent.id, files=listing.files, bytes=listing.bytes, dirs=listing.dirs,
                            symlinks=listing.symlinks, packs=header.packs, stored_bytes=header.stored_bytes,
                            seconds=time.monotonic() - started, extras=listing.extras, skipped=listing.skipped,
                            removed_leftovers=len(removed), **run.counts)
    log.info("backup.snapshot.created", **{k: v for k, v in result.to_dict().items() if k not in ("skipped",)})
    return result


def _looked(run: _Run, listing: Listing, source: Path | ObjectLibrary, extra_files: dict[str, Path],
            referenced: _References, processes: ForkedWorkers | None = None,
            ) -> Iterator[bytes | tuple[ManifestEntry, str | Path, _Look]]:
    """The listing in order: finished snapshot lines (bytes: folders, links, and files the parent's line shows
    unchanged, see `_Listed`), and each other file already looked at by one of READERS threads, or read by
    the worker `processes` when given: on a cold cache the reads overlap (one at a time, a file system
    answers 20,000 small reads at its latency, not its throughput). Files go to the readers in batches (a
    task per file costs more than looking at an unchanged one); at most WINDOW batches are in flight."""
    pending: collections.deque = collections.deque()
    batch: list = []
    batch_bytes = 0
    to_look = 0
    listed = _Listed(run, source, extra_files, referenced)
    batch_files = PROCESS_BATCH_FILES if processes else BATCH_FILES
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="backup-read") as pool:
        def submit(batch: list) -> Future | _ReadInProcesses:
            return _ReadInProcesses(processes, batch) if processes else pool.submit(_look_batch, run, batch)

        try:
            for items in listed.read(listing):
                for item in items:
                    batch.append(item)
                    if item.__class__ is not bytes:
                        to_look += 1
                        batch_bytes += min(item[0].size, SMALL_FILE)
                        if to_look >= batch_files or batch_bytes >= BATCH_BYTES:
                            pending.append((batch, submit(batch)))
                            batch, batch_bytes, to_look = [], 0, 0
                            while len(pending) > WINDOW:
                                yield from _resolved(*pending.popleft())
                if batch and not to_look:  # only finished lines so far: nothing to wait for
                    pending.append((batch, None))
                    batch = []
                    while len(pending) > WINDOW:
                        yield from _resolved(*pending.popleft())
            if batch:
                pending.append((batch, submit(batch) if to_look else None))
            while pending:
                yield from _resolved(*pending.popleft())
        finally:
            for _, future in pending:
                if future is not None:
                    future.cancel()


class _Listed:
    """The listing's lines as the new snapshot's lines, or as files to look at.

    A folder's or a link's listing line is its snapshot line. A file's listing line (path, type, size, mode,
    mtime_ns, then ino and ctime_ns) equals, byte for byte, its line in the parent with `"sha256":...` taken
    out when nothing about the file changed: then the parent's line is the new line, as long as the file is
    not racily recent (`ParentSnapshot.racy_after`) and its blob is indexed. Nothing of such a file is parsed,
    formatted, or handed to a thread (a repeat backup of 100,000 unchanged files spent most of its time
    doing that). Every other file is parsed (one json call per block of lines) and looked at."""

    SHA_FIELD = b',"sha256":"'
    IDENTITY_FIELD = b',"ino":'
    SIZE_FIELD = len(b'","type":"file","size":')

    def __init__(self, run: _Run, source: Path | ObjectLibrary, extra_files: dict[str, Path],
                 referenced: _References):
        self.run = run
        self.source = source
        self.extra_files = extra_files
        self.referenced = referenced
        self.lines = None if run.force_read else run.parent.lines
        self.racy_after = run.parent.racy_after

    def read(self, listing: Listing) -> Iterator[list]:
        with open(listing.path, "rb") as handle:
            while lines := handle.readlines(READ_BYTES):
                yield self._items(lines)

    def _items(self, lines: list[bytes]) -> list:
        items: list = []
        done: list[bytes] = []  # finished lines not yet in `items`
        todo: list[int] = []  # where in `items` a line waits to be parsed
        trusted = reused = 0
        parent = self.lines
        for line in lines:
            end = line.find(TYPE_AFTER_PATH, PATH_START)
            if end > 0 and not line.startswith(b'file"', end + 10):
                done.append(line)
                continue
            if parent is not None and end > 0:
                if line.startswith(LIBRARY_PREFIX):
                    found = parent.line_for(line[PATH_START:end + 1])
                    if found is not None:
                        size = self._unchanged(line, found, end)
                        if size is not None:
                            done.append(found)
                            trusted += 1
                            reused += size
                            continue
                        self.run.parent.remember_line(found)
                else:  # the extras, after the library: the parent's are looked up by path
                    parent.drain()
            if done:
                items.append(b"".join(done))
                done = []
            todo.append(len(items))
            items.append(line)
        if done:
            items.append(b"".join(done))
        if trusted:
            self.run.trusted(trusted, reused)
        if todo:
            try:
                records = json.loads(b"[" + b",".join(items[at] for at in todo) + b"]")
                if len(records) != len(todo):
                    raise ValueError("a line holds more than one value")
                for at, record in zip(todo, records, strict=True):
                    entry = ManifestEntry.from_record(record)
                    items[at] = (entry, _local(self.source, self.extra_files, entry.path), None)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise RuntimeError(f"a line of the listing does not parse ({exc})") from None
        return items

    def _unchanged(self, line: bytes, found: bytes, end: int) -> int | None:
        """The file's size when `found` (the parent's line for its path) shows it unchanged and its blob is
        indexed; else None."""
        cut = line.rfind(self.IDENTITY_FIELD)
        if cut < 0 or line.startswith(b',"ino":0,', cut):
            return None
        if (len(found) != len(line) + 76 or not found.startswith(line[:cut]) or not found.endswith(line[cut:])
                or not found.startswith(self.SHA_FIELD, cut) or found[cut + 75] != 0x22):  # 0x22: '"'
            return None
        sha = found[cut + 11:cut + 75]
        try:
            mtime_ns = int(line[line.rfind(b":", 0, cut) + 1:cut])
            digest = binascii.unhexlify(sha)
        except ValueError:
            return None
        if sha != sha.lower():  # a line this code writes has lowercase hex, as every reader compares it
            return None
        if mtime_ns > self.racy_after:
            return None
        pack = self.run.index.pack_of_digest(digest)
        if pack is None:
            return None
        self.referenced.packs.add(pack)
        start = end + self.SIZE_FIELD
        return int(line[start:line.index(b",", start)])


def _reader_processes(run: _Run, listing: Listing) -> ForkedWorkers | None:
    """Worker processes that read the small files, where there are enough of them to pay for the forks and
    nothing needs the parent snapshot's lines (which the main thread fills as it reads the listing): a
    first snapshot of a folder, or --force-read. Else (and for a bucket) the reader threads look."""
    if (run.objects is not None or listing.files < PROCESSES_FROM or not can_fork_workers()
            or (run.parent.id is not None and not run.force_read)):
        return None
    return ForkedWorkers(_FileReaders(), READER_PROCESSES,
                         died="backup: a file reader process died (killed?); no snapshot was written",
                         hint="run the backup again: it starts over, reusing the packs already checked")


class _ReadInProcesses:
    """A batch's files read by the worker processes (`_FileReaders`), resolved as a reader thread's future is."""

    def __init__(self, processes: ForkedWorkers, batch: list):
        self.processes = processes
        self.batch = batch
        self.future = processes.submit("read", [(str(item[1]), item[0].size, item[0].mtime_ns) for item in batch
                                                if item.__class__ is not bytes])

    def result(self) -> list[_Look | None]:
        read = iter(self.processes.result(self.future))
        looks: list[_Look | None] = []
        for item in self.batch:
            if item.__class__ is bytes:
                looks.append(None)
            else:
                looks.append(_read_look(next(read)))
        return looks

    def cancel(self) -> None:
        self.future.cancel()


def _look_batch(run: _Run, batch: list) -> list[_Look | None]:
    """On a reader thread: what `_resolved` pairs with the batch's items (None for a finished line)."""
    looks = [None if item.__class__ is bytes else run.look_unread(item[0].path, item[1], item[0].size,
                                                                  item[0].mtime_ns) for item in batch]
    unread = [at for at, item in enumerate(batch) if item.__class__ is not bytes and looks[at] is None]
    read = _read_files([(batch[at][1], batch[at][0].size, batch[at][0].mtime_ns) for at in unread])
    for at, done in zip(unread, read, strict=True):
        looks[at] = _read_look(done)
    return looks


def _read_look(read: _Read) -> _Look:
    sha, data, ino, ctime_ns = read
    return _Look(ino, ctime_ns, sha, data, False)


def _resolved(batch: list, future) -> Iterator:  # noqa: ANN001 - a Future, or None: nothing to look at
    if future is None:
        yield from batch
        return
    for item, seen in zip(batch, future.result(), strict=True):
        yield item if seen is None else (item[0], item[1], seen)


def _clean_if_alone(repo: Repository) -> list[Path]:
    """With no other backup or prune running (the lock free for us alone): remove what killed runs left,
    temp files and packs that no index names. With others running, only dead processes' temp files."""
    try:
        with repo.lock(exclusive=True, what="cleanup", timeout=0):
            removed = repo.clean_leftovers()
            if repo.packs.is_dir():
                for orphan in repo.orphan_packs(indexed_pack_names(repo.index)):
                    orphan.unlink()
                    removed.append(orphan)
            return removed
    except InputError:
        return repo.clean_leftovers()


def _bytes_to_read(listing: Listing, repo: Repository, source: str) -> int:
    """An upper bound on the new bytes: every file not listed in the parent with the same size and mtime (the
    parent loaded whole for this: it runs only when the free space is short of every byte)."""
    parent = ParentSnapshot.load(repo, source)
    total = 0
    for entry in listing.read():
        if entry.type == FILE and not parent.same_size_and_mtime(entry.path, entry.size, entry.mtime_ns):
            total += entry.size
    return total


class _References:
    """What the new snapshot references, checked before it is written: every blob is indexed, and every pack
    holding one is there with its indexed size. A blob is looked up as it is referenced (only the pack names
    are kept, not a table of 100,000 blobs); one still in the open pack is looked up once that pack is sealed."""

    def __init__(self, repo: Repository, index: RepositoryIndex, store: PackStore):
        self.repo = repo
        self.index = index
        self.store = store
        self.packs: set[str] = set()
        self.pending: dict[str, str] = {}  # blob -> a path naming it, until its pack is indexed
        self.missing: list[str] = []
        self._sealed = 0

    def add(self, sha: str, path: str) -> None:
        if len(self.store.written) != self._sealed:
            self._resolve()
        pack = self.index.pack_of(sha)
        if pack is not None:
            self.packs.add(pack)
        else:
            self.pending.setdefault(sha, path)

    def _resolve(self) -> None:
        self._sealed = len(self.store.written)
        pending, self.pending = self.pending, {}
        for sha, path in pending.items():
            pack = self.index.pack_of(sha)
            if pack is not None:
                self.packs.add(pack)
            elif sha in self.store:  # in a pack still being sealed
                self.pending[sha] = path
            else:
                self.missing.append(f"{path}: blob {sha} is not in the index")

    def check(self) -> None:
        self._resolve()
        missing = list(self.missing)
        for pack in sorted(self.packs):
            if self.repo.pack_size(pack) != self.index.packs[pack].size:
                missing.append(f"pack {pack} is missing or has the wrong size")
        if missing:
            raise VerificationError(f"backup: the snapshot would reference content the repository lacks "
                                    f"({len(missing)} problems); no snapshot was written",
                                    hint="run `mobius backup verify` on the repository", details=missing[:100])


def list_snapshots(root: Path, keys: RepositoryKeys = PLAIN) -> list[SnapshotHeader]:
    """Every readable snapshot header in the repository at `root`, newest first."""
    return list(reversed(Repository(Path(root), keys).headers()))


def snapshot_created(header: SnapshotHeader) -> dt.datetime:
    return dt.datetime.fromisoformat(header.created.replace("Z", "+00:00"))


__all__ = ["LIBRARY_ROOT", "Repository", "SnapshotResult", "list_snapshots", "write_snapshot_of"]
