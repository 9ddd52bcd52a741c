"""Restoring a snapshot straight from its packs, with the archive restore's guarantees and machinery.

Every entry's name and symlink target pass the same member rules as an archive member (no
absolute names, no `..`, links that stay inside); files are created through folder descriptors
with O_EXCL|O_NOFOLLOW in a staging folder beside the target (extract.py), each checked against its
sha256 as its blob is read; modes (no setuid/setgid), mtimes, folder metadata last; links resolved
for real; then `sync` and the crash-safe swap (safety/swap): an existing target is kept as
`<DIR>.rollback.<stamp>`. Any failure removes the staging folder and leaves the target untouched.
"""

from __future__ import annotations

import collections
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from mobius.backup.extract import (
    STAGING_PREFIX,
    ExtractCounts,
    Staging,
    _apply_folder_metadata,
    _create,
    _make_links,
    _OpenFolder,
    _SmallFiles,
    relative_to_root,
    remove_stale_staging,
    rmtree,
    safe_mode,
)
from mobius.backup.index import RepositoryIndex
from mobius.backup.manifest import DIR, FILE, LIBRARY_ROOT, SYMLINK
from mobius.backup.member_rules import link_target_problem, name_problem, normalize
from mobius.backup.pack import BlobReader, DirectAppender, PackDamaged
from mobius.backup.repository import Repository
from mobius.backup.restore import ArchiveRestore
from mobius.backup.snapshot import SnapshotDamaged, SnapshotEntry, read_entries, read_header
from mobius.backup.trial_restore import TestRestoreReport, compare_tree
from mobius.errors import InputError, VerificationError
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress
from mobius.safety.atomic import atomic_write, pwrite_all, sync_filesystem
from mobius.safety.diskspace import require_free_space
from mobius.safety.leftovers import scratch_name
from mobius.safety.swap import swap_folder

WRITERS = 4  # threads creating small files (file creation, not bytes, is what a restore of many files waits on)
WRITEBACK_BYTES = 64 << 20
SMALL_BYTES = 8 << 20  # per group of small files (3 in flight), beside _LargeFiles.IN_FLIGHT: at most restic's peak


def restore_snapshot_tree(repo: Repository, snapshot: str, to: Path, *, progress: Progress | None = None
                          ) -> ArchiveRestore:
    """The snapshot's library as folder `to` (previous content kept as a rollback folder)."""
    progress = progress or NoProgress()
    started = time.monotonic()
    to = Path(to).expanduser()
    to = to.parent.resolve() / to.name if to.name else to.resolve()
    if to.exists() and not to.is_dir():
        raise InputError(f"{to} exists and is not a folder", hint="choose a folder to restore into")
    with repo.lock(exclusive=False, what=f"a prune of {repo.root}"):
        snapshot_id = repo.require(snapshot)
        path = repo.snapshot_file(snapshot_id)
        header = _header(repo, path, snapshot_id)
        index = RepositoryIndex.load(repo.index, repo.keys)
        to.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(to.parent)
        require_free_space(to.parent, header.bytes, what=f"restoring snapshot {snapshot_id} into {to}")
        result = ArchiveRestore(archive=path, to=to, rollback=None, member_root=LIBRARY_ROOT)
        staging = Staging(to.parent, to.name)
        try:
            with tempfile.TemporaryDirectory(prefix=scratch_name("restore")) as scratch:
                counts = _extract(repo, index, path, staging, Path(scratch), progress)
            result.files, result.dirs, result.symlinks, result.bytes = (counts.files, counts.dirs, counts.symlinks,
                                                                        counts.bytes)
            if not sync_filesystem(staging.path):
                os.sync()
            result.rollback = swap_folder(staging.path, to)
        except BaseException:
            staging.remove()
            raise
        staging.close()
    result.seconds = time.monotonic() - started
    result.notes.append(f"from snapshot {snapshot_id}")
    get_logger().info("backup.snapshot.restored", snapshot=snapshot_id, to=str(to), files=result.files,
                      rollback=str(result.rollback) if result.rollback else None)
    return result


def test_restore_snapshot_tree(repo: Repository, snapshot: str, *, scratch: Path | None = None,
                               progress: Progress | None = None) -> TestRestoreReport:
    """The runbook's test restore of a snapshot: restored from its packs into a scratch folder (beside the
    repository unless `scratch`), every entry compared with the snapshot (sha256 re-read), cleaned up."""
    started = time.monotonic()
    snapshot_id = repo.require(snapshot)
    base = Path(scratch) if scratch else repo.root
    base.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(base)
    holder = base / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-test"
    holder.mkdir(mode=0o700)
    try:
        restore_snapshot_tree(repo, snapshot_id, holder / "restored", progress=progress)
        path = repo.snapshot_file(snapshot_id)
        reference = ((rel, e.type, e.size, e.mode, e.mtime_ns, e.target, e.sha256, True)
                     for e in read_entries(path, repo.keys)
                     if (rel := relative_to_root(e.path, LIBRARY_ROOT)) is not None)
        outcome = compare_tree(holder / "restored", reference, path)
    finally:
        rmtree(holder)
    outcome.seconds = time.monotonic() - started
    outcome.snapshot = snapshot_id
    outcome.notes.append(f"from snapshot {snapshot_id}")
    get_logger().info("backup.snapshot.test_restore", snapshot=snapshot_id, ok=outcome.ok, compared=outcome.compared)
    return outcome


test_restore_snapshot_tree.__test__ = False  # a library function, not a pytest test


def extract_snapshot_member(repo: Repository, snapshot: str, member: str, dest_file: Path) -> str:
    """Write the file `member` of a snapshot (e.g. 'database/mobius.dump', 'workspace/.env') atomically to
    `dest_file`, checked against its sha256; returns the sha256."""
    member = normalize(member)
    with repo.lock(exclusive=False, what=f"a prune of {repo.root}"):
        snapshot_id = repo.require(snapshot)
        path = repo.snapshot_file(snapshot_id)
        try:
            entry = next((e for e in read_entries(path, repo.keys) if e.path == member and e.type == FILE), None)
        except SnapshotDamaged as exc:
            raise VerificationError(f"snapshot {snapshot_id} is unreadable: {exc}",
                                    hint="run `mobius backup verify`") from None
        if entry is None:
            raise InputError(f"snapshot {snapshot_id} has no file {member!r}",
                             hint="`mobius backup list --json` shows each snapshot's extras")
        index = RepositoryIndex.load(repo.index, repo.keys)
        reader = BlobReader(repo.packs, repo.keys)
        try:
            with atomic_write(Path(dest_file), "wb", file_mode=0o600) as out:
                for chunk in _blob(reader, index, entry):
                    out.write(chunk)
        finally:
            reader.close()
    return entry.sha256


def _header(repo: Repository, path: Path, snapshot_id: str):  # noqa: ANN202 - a SnapshotHeader
    try:
        return read_header(path, repo.keys)
    except SnapshotDamaged as exc:
        raise VerificationError(f"snapshot {snapshot_id} is unreadable: {exc}",
                                hint="run `mobius backup verify`; restore another snapshot") from None


def _blob(reader: BlobReader, index: RepositoryIndex, entry: SnapshotEntry):  # noqa: ANN202 - an iterator
    where = index.get(entry.sha256 or "")
    if where is None:
        raise VerificationError(f"restore failed: {entry.path}: its content {entry.sha256} is in no pack",
                                hint="run `mobius backup verify --read-data`; restore another snapshot")
    try:
        yield from reader.read_checked(entry.sha256, where)
    except PackDamaged as exc:
        raise VerificationError(f"restore failed: {entry.path}: {exc}",
                                hint="run `mobius backup verify --read-data`; restore another snapshot") from None


def _refuse(entry: SnapshotEntry, why: str) -> VerificationError:
    return VerificationError(f"restore refused: {entry.path} ({why})",
                             hint="the snapshot file was changed by hand or is hostile; restore another")


class _Writeback:
    """Starts writing the staged files to the device while the restore goes on: a syncfs on a thread each
    time WRITEBACK_BYTES more were written (one at a time). The sync after the last file, which makes the
    restore durable before the swap, stays; it then finds little left to write, where before the whole
    restore waited for the device at the end (the kernel starts writeback only at 10% of memory dirty).
    An error of a background sync is raised at `finish` (a later syncfs on a new descriptor would not see it)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore-sync")
        self.futures: list[Future] = []
        self.kicked = 0

    def written(self, total: int) -> None:
        if total - self.kicked >= WRITEBACK_BYTES and (not self.futures or self.futures[-1].done()):
            self.kicked = total
            self.futures.append(self.pool.submit(sync_filesystem, self.folder))

    def finish(self) -> None:
        self.pool.shutdown(wait=True)
        for future in self.futures:
            future.result()


class _LargeFiles:
    """Large files written on the pool's threads while the caller reads (and checks) the next blobs.

    The caller reads each blob from its pack and hashes it, in snapshot order, on its own thread (one
    BlobReader: packs stay open, an encrypted one is decrypted once); each chunk is handed over as it
    comes: into a DirectAppender (O_DIRECT, written by its own thread) where the file system has O_DIRECT,
    else (immutable bytes) written at its offset by a pool thread; then one job per file sets its mode and
    mtime (and starts its writeback) and closes it once its chunks are written. On 1 GiB of media the
    restore spent as long in write() as in reading, decompressing and hashing, one after the other.
    At most IN_FLIGHT bytes are handed over and not yet written. Any job's error, of any type, is raised
    by a later `add`/`flush`; `close` (after the pool is shut down) closes what a failed restore left open.
    """

    IN_FLIGHT = 8 << 20

    def __init__(self, pool: ThreadPoolExecutor):
        self.pool = pool
        self.queued: collections.deque[tuple[Future, int]] = collections.deque()
        self.bytes = 0
        self.open: set[int] = set()
        self.appenders: set[DirectAppender] = set()
        self.lock = threading.Lock()

    def write(self, fd: int, chunks: Iterator[bytes], mode: int, mtime_ns: int) -> None:
        """Hand over every chunk of one file (created by the caller as `fd`, now owned here)."""
        with self.lock:
            self.open.add(fd)
        direct = DirectAppender.open(Path(f"/proc/self/fd/{fd}"))
        if direct is not None:
            self._write_direct(fd, direct, chunks, mode, mtime_ns)
            return
        writes: list[Future] = []
        offset = 0
        for chunk in chunks:
            writes.append(self._queue(self.pool.submit(pwrite_all, fd, chunk, offset), len(chunk)))
            offset += len(chunk)
        self._queue(self.pool.submit(self._finish, fd, writes, mode, mtime_ns), 0)

    def _write_direct(self, fd: int, direct: DirectAppender, chunks: Iterator[bytes], mode: int, mtime_ns: int
                      ) -> None:
        """Through a DirectAppender (O_DIRECT, its own writer thread): the bytes are not copied into the page cache
        (that copy was the largest CPU cost of writing); a pool job waits for its last write and closes it."""
        with self.lock:
            self.appenders.add(direct)
        try:
            for chunk in chunks:
                direct.write(chunk)
        except BaseException:
            self._drop(direct)
            raise
        self._queue(self.pool.submit(self._finish_direct, fd, direct, mode, mtime_ns), 2 * DirectAppender.SLAB)

    def _finish_direct(self, fd: int, direct: DirectAppender, mode: int, mtime_ns: int) -> None:
        try:
            direct.close()
            os.fchmod(fd, mode)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            self._drop(direct)
            with self.lock:
                self.open.discard(fd)
            os.close(fd)

    def _drop(self, direct: DirectAppender) -> None:
        direct.abort()
        with self.lock:
            self.appenders.discard(direct)

    def _queue(self, future: Future, size: int) -> Future:
        self.queued.append((future, size))
        self.bytes += size
        while self.bytes > self.IN_FLIGHT:
            self._wait_oldest()
        return future

    def _wait_oldest(self) -> None:
        future, size = self.queued.popleft()
        self.bytes -= size
        future.result()

    def _finish(self, fd: int, writes: list[Future], mode: int, mtime_ns: int) -> None:
        """After the file's writes (queued before this job: no thread waits on a job not yet started)."""
        try:
            wait(writes)
            for done in writes:
                done.result()
            os.fchmod(fd, mode)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # starts its writeback: the final sync finds less
        finally:
            with self.lock:
                self.open.discard(fd)
            os.close(fd)

    def flush(self) -> None:
        while self.queued:
            self._wait_oldest()

    def close(self) -> None:
        with self.lock:
            appenders, self.appenders = list(self.appenders), set()
        for direct in appenders:
            direct.abort()
        with self.lock:
            for fd in self.open:
                os.close(fd)
            self.open.clear()


def _extract(repo: Repository, index: RepositoryIndex, path: Path, staging: Staging, scratch: Path,
             progress: Progress) -> ExtractCounts:
    counts = ExtractCounts()
    parents = _OpenFolder(staging.fd)
    pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="restore-write")
    small = _SmallFiles(parents, pool, writers=WRITERS, max_bytes=SMALL_BYTES)
    large = _LargeFiles(pool)
    writeback = _Writeback(staging.path)
    reader = BlobReader(repo.packs, repo.keys)
    links = open(scratch / "links.jsonl", "w+", encoding="utf-8")  # noqa: SIM115 - closed below
    folders = open(scratch / "folders.jsonl", "w+", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        for entry in read_entries(path, repo.keys):
            rel = relative_to_root(entry.path, LIBRARY_ROOT)
            if rel is None:
                continue  # the settings file and the database dump: not part of the library
            problem = name_problem(entry.path) or (entry.path != normalize(entry.path) and "not a normal name")
            if entry.type == SYMLINK:
                problem = problem or link_target_problem(entry.path, entry.target or "", LIBRARY_ROOT)
            elif entry.type not in (FILE, DIR):
                problem = problem or f"type {entry.type}"
            if problem:
                raise _refuse(entry, str(problem))
            if rel == "" and entry.type != DIR:
                raise _refuse(entry, "the library root is not a folder")
            if entry.type == DIR:
                if rel:
                    parents.get(rel)
                folders.write(json.dumps([rel, safe_mode(DIR, entry.mode), entry.mtime_ns]) + "\n")
                counts.dirs += 1
            elif entry.type == FILE:
                _write(reader, index, entry, rel, small, large)
                counts.files += 1
                counts.bytes += entry.size
                progress.advance(entry.size)
                writeback.written(counts.bytes)
            else:
                links.write(json.dumps([rel, entry.target, entry.mtime_ns]) + "\n")
                counts.symlinks += 1
        small.flush()
        large.flush()
        parents.close()
        links.seek(0)
        _make_links(links, staging)
        folders.seek(0)
        _apply_folder_metadata(folders, staging)
        writeback.finish()
    except SnapshotDamaged as exc:
        raise VerificationError(f"restore failed: {path.name} is unreadable: {exc}",
                                hint="run `mobius backup verify`; restore another snapshot") from None
    finally:
        pool.shutdown(cancel_futures=True)
        small.close()
        large.close()
        writeback.pool.shutdown(wait=True)
        parents.close()
        reader.close()
        links.close()
        folders.close()
    return counts


def _write(reader: BlobReader, index: RepositoryIndex, entry: SnapshotEntry, rel: str, small: _SmallFiles,
           large: _LargeFiles) -> None:
    folder, _, leaf = rel.rpartition("/")
    parent = small.parents.get(folder)
    mode = safe_mode(FILE, entry.mode)
    if entry.size < small.LIMIT:
        data = b"".join(_blob(reader, index, entry))
        if len(data) != entry.size:
            raise VerificationError(f"restore failed: {entry.path} is {len(data)} bytes, the snapshot says "
                                    f"{entry.size}", hint="run `mobius backup verify --read-data`")
        small.add(parent, leaf, data, mode, entry.mtime_ns, entry.path)
        return
    fd = _create(parent, leaf, entry.path)
    # checked against its sha256 at its end, before the restore can succeed (else the staging is removed)
    large.write(fd, _blob(reader, index, entry), mode, entry.mtime_ns)
