"""Extraction: a verified archive's members written into a staging folder, never through a link.

Every member's name, type and link is checked (see member_rules) and every file's sha256 as it is
written; writes go through folder fds (no path walks); symlinks are created last and resolved for
real; folder modes and mtimes are applied deepest first once everything exists. `restore` swaps
the finished staging folder in; `trial_restore` compares it with the manifest.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from mobius.backup.manifest import DIR, FILE, MANIFEST_NAME, SUMS_NAME
from mobius.backup.member_index import MemberIndex
from mobius.backup.member_rules import kind, member_problem, normalize
from mobius.backup.reader import ArchiveDamaged, ArchiveReader
from mobius.backup.verify import VerifyReport, scan
from mobius.errors import InputError, VerificationError
from mobius.progress import Progress
from mobius.safety.atomic import atomic_write, write_all
from mobius.safety.leftovers import rmtree_parallel, sweep

STAGING_PREFIX = ".mobius-restore-"


@dataclass
class ExtractCounts:
    """What one extraction wrote."""

    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0


def safe_mode(kind_name: str, mode: int) -> int:
    """Permission bits a restore applies: no setuid/setgid on files, no setuid on folders."""
    return mode & 0o777 if kind_name == FILE else mode & 0o3777


def refuse(report: VerifyReport) -> VerificationError:
    """A failed verify as the restore's refusal (nothing was written)."""
    error = report.error()
    error.message = error.message.replace("backup verify:", "restore refused: verify of", 1)
    return error


def relative_to_root(name: str, root: str) -> str | None:
    """The path below `root`, '' for the root itself, None when the member lies elsewhere."""
    if name in (MANIFEST_NAME, SUMS_NAME) and root == "":
        return None
    if not root:
        return name
    if name == root:
        return ""
    return name[len(root) + 1:] if name.startswith(root + "/") else None


class Staging:
    """The temporary folder beside the target, opened once; every write goes through folder fds (no path walks)."""

    def __init__(self, parent: Path, name: str):
        self.path = parent / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{name}"[:255]
        os.mkdir(self.path, 0o700)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def remove(self) -> None:
        self.close()
        rmtree(self.path)


def rmtree(path: Path) -> None:
    """Remove a staged or scratch tree, even one whose restored folder modes forbid writing."""
    if path.exists() or path.is_symlink():
        rmtree_parallel(path)


def remove_stale_staging(parent: Path) -> None:
    """Staging folders left by killed restores (their process is gone): the shared leftovers sweep."""
    sweep([parent])


def _folder(base: int, parts: list[str]) -> int:
    """An fd for the folder base/parts..., creating missing ones; refuses any component that is not a real folder."""
    fd = os.dup(base)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o700, dir_fd=fd)
            try:
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                raise VerificationError(f"restore refused: '{part}' on the way to a member is not a folder "
                                        "(a link or a file)", hint="the archive is hostile or damaged") from None
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


class _OpenFolder:
    """The folder the last member went into, kept open: an archive's members come folder by folder,
    so most files reuse it instead of walking (and creating) their parents again."""

    def __init__(self, base: int):
        self.base = base
        self.rel: str | None = None
        self.fd = -1
        self.retired: list[int] = []  # folders left behind, still used by queued writes

    def get(self, rel: str) -> int:
        """An fd (owned by this cache) for the folder `rel` under base, created when missing."""
        if rel != self.rel:
            fd = _folder(self.base, rel.split("/")) if rel else os.dup(self.base)
            if self.fd >= 0:
                self.retired.append(self.fd)
            self.rel, self.fd = rel, fd
        return self.fd

    def take_retired(self) -> list[int]:
        """The folders left behind so far, handed to the caller to close once the writes using them are done."""
        retired, self.retired = self.retired, []
        return retired

    def release(self) -> None:
        """Close the folders left behind (once no queued write uses them)."""
        for fd in self.retired:
            os.close(fd)
        self.retired.clear()

    def close(self) -> None:
        self.release()
        if self.fd >= 0:
            os.close(self.fd)
        self.rel, self.fd = None, -1


MAX_BYTES = 32 << 20


class _SmallFiles:
    """Small files, already read and hashed, written a group at a time on the pool's threads.

    Creating a file costs the file system far more than copying a few KB, and two threads create
    about 1.6x as many per second as one; the archive is still read once, in order, on the caller's
    thread, and it reads the next group while up to IN_FLIGHT groups are being written (at 100,000
    files the reader waited 14 s of a 34 s restore for each group's writes before reading on).
    A folder fd retired while a group was gathered is closed only once that group (and every group
    before it) is written. `flush` waits for everything queued; `close` (after the pool is shut down)
    closes what a failed restore left open.
    """

    MAX_FILES = 512
    LIMIT = 1 << 20  # a member this big or bigger is streamed by the caller instead
    IN_FLIGHT = 2

    def __init__(self, parents: _OpenFolder, pool: ThreadPoolExecutor, writers: int = 2, max_bytes: int = MAX_BYTES):
        self.max_bytes = max_bytes
        self.parents = parents
        self.pool = pool
        self.writers = writers
        self.pending: list[tuple[int, str, bytes, int, int, str]] = []
        self.bytes = 0
        self.written = 0  # bytes handed to the writers so far
        self.in_flight: collections.deque[tuple[list[Future], list[int]]] = collections.deque()

    def add(self, parent: int, leaf: str, data: bytes, mode: int, mtime_ns: int, name: str) -> None:
        self.pending.append((parent, leaf, data, mode, mtime_ns, name))
        self.bytes += len(data)
        if len(self.pending) >= self.MAX_FILES or self.bytes >= self.max_bytes:
            self._hand_over()
            while len(self.in_flight) > self.IN_FLIGHT:
                self._wait_oldest()

    def _hand_over(self) -> None:
        pending, self.pending, self.written, self.bytes = self.pending, [], self.written + self.bytes, 0
        if pending:
            size = -(-len(pending) // self.writers)
            futures = [self.pool.submit(_write_group, pending[at:at + size]) for at in range(0, len(pending), size)]
            self.in_flight.append((futures, self.parents.take_retired()))

    def _wait_oldest(self) -> None:
        futures, retired = self.in_flight.popleft()
        wait(futures)  # every part done before its folders close, even when one part failed
        for fd in retired:
            os.close(fd)
        for future in futures:
            future.result()  # errors raise here

    def flush(self) -> None:
        """Write every queued file and wait for all of them (errors raise here), then close the folders they no
        longer need."""
        self._hand_over()
        while self.in_flight:
            self._wait_oldest()
        self.parents.release()

    def close(self) -> None:
        """After the pool is shut down (no write running): close the folders queued groups still held."""
        while self.in_flight:
            for fd in self.in_flight.popleft()[1]:
                os.close(fd)


def _write_group(group: list[tuple[int, str, bytes, int, int, str]]) -> None:
    for parent, leaf, data, mode, mtime_ns, name in group:
        fd = _create(parent, leaf, name)
        try:
            write_all(fd, data)
            os.fchmod(fd, mode)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)


def _create(parent: int, leaf: str, name: str) -> int:
    try:
        return os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
    except FileExistsError:
        raise VerificationError(f"restore refused: {name} appears twice in the archive",
                                hint="the archive is hostile or damaged") from None


def extract_tree(path: Path, report: VerifyReport, index: MemberIndex, root: str, staging: Staging,
                 scratch: Path, progress: Progress) -> ExtractCounts:
    """Second pass: write every member under `root` into staging, hashing files against the manifest."""
    result = ExtractCounts()
    parents = _OpenFolder(staging.fd)
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="restore-write")
    small = _SmallFiles(parents, pool)
    links = open(scratch / "links.jsonl", "w+", encoding="utf-8")  # noqa: SIM115 - closed below
    folders = open(scratch / "folders.jsonl", "w+", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        with ArchiveReader(path, progress) as reader:
            try:
                for info in reader.members():
                    name = normalize(info.name)
                    rel = relative_to_root(name, root)
                    if rel is None:
                        continue
                    problem = member_problem(info, root)
                    if problem:
                        raise VerificationError(f"restore refused: {info.name} ({problem})",
                                                hint="the archive changed since it was verified, or is hostile")
                    what = kind(info)
                    if rel == "" and what != DIR:
                        raise VerificationError(f"restore refused: {info.name} should be the folder to restore, "
                                                f"it is a {what}", hint="the archive is hostile or damaged")
                    entry, sha256 = index.expected_with_sha256(name) if report.has_manifest else (None, None)
                    mode = entry.mode if entry else info.mode
                    mtime_ns = entry.mtime_ns if entry else int(info.mtime) * 1_000_000_000
                    if what == DIR:
                        if rel:
                            parents.get(rel)
                        folders.write(json.dumps([rel, safe_mode(DIR, mode), mtime_ns]) + "\n")
                        result.dirs += 1
                    elif what == FILE:
                        _write_file(reader, info, name, rel, small, sha256, safe_mode(FILE, mode), mtime_ns)
                        result.files += 1
                        result.bytes += info.size
                    else:
                        links.write(json.dumps([rel, info.linkname, mtime_ns]) + "\n")
                        result.symlinks += 1
            except ArchiveDamaged as exc:
                raise VerificationError(f"restore failed: {path.name} unreadable at {reader.current}: {exc}",
                                        hint="the archive changed since it was verified; verify it again") from None
            archive_sha256, _, _ = reader.finish()
        small.flush()
        parents.close()
        if report.sha256 and archive_sha256 != report.sha256:
            raise VerificationError(f"restore failed: {path.name} changed while it was being restored",
                                    hint="make sure nothing writes to the backups folder, then run again")
        links.seek(0)
        _make_links(links, staging)
        folders.seek(0)
        _apply_folder_metadata(folders, staging)
    finally:
        pool.shutdown(cancel_futures=True)
        small.close()
        parents.close()
        links.close()
        folders.close()
    return result


def _write_file(reader: ArchiveReader, info, name: str, rel: str, small: _SmallFiles, expected: str | None,
                mode: int, mtime_ns: int) -> None:
    """Hash one member as it is read; a small one is queued, a large one streamed to its file now.

    `expected` is its manifest sha256, if any: a mismatch stops the restore before the file is written.
    """
    folder, _, leaf = rel.rpartition("/")
    parent = small.parents.get(folder)
    digest = hashlib.sha256()
    if info.size < small.LIMIT:
        data = b"".join(bytes(chunk) for chunk in reader.chunks(info))
        digest.update(data)
        _check_member(name, expected, digest)
        small.add(parent, leaf, data, mode, mtime_ns, name)
        return
    small.flush()  # in archive order: nothing queued is left unwritten behind a large file
    fd = _create(parent, leaf, name)
    try:
        for chunk in reader.chunks(info):
            digest.update(chunk)
            write_all(fd, chunk)
        os.fchmod(fd, mode)
        os.utime(fd, ns=(mtime_ns, mtime_ns))
    finally:
        os.close(fd)
    _check_member(name, expected, digest)


def _check_member(name: str, expected: str | None, digest) -> None:  # noqa: ANN001 - a hashlib object
    if expected and expected != digest.hexdigest():
        raise VerificationError(f"restore failed: {name} does not match its sha256 in the manifest",
                                hint="the archive changed since it was verified; verify it again")


def _make_links(lines, staging: Staging) -> None:
    real_root = os.path.realpath(staging.path)
    created = []
    for line in lines:
        rel, target, mtime_ns = json.loads(line)
        parts = rel.split("/")
        parent = _folder(staging.fd, parts[:-1])
        try:
            try:
                os.symlink(target, parts[-1], dir_fd=parent)
            except FileExistsError:
                raise VerificationError(f"restore refused: symlink {rel} collides with another member",
                                        hint="the archive is hostile or damaged") from None
            with contextlib.suppress(OSError, NotImplementedError):
                os.utime(parts[-1], ns=(mtime_ns, mtime_ns), dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)
        created.append(rel)
        if len(created) >= 1000:
            _check_links(created, staging.path, real_root)
            created.clear()
    _check_links(created, staging.path, real_root)


def _check_links(rels: list[str], base: Path, real_root: str) -> None:
    """Resolve each link for real (through other links): all must land inside the restored folder."""
    for rel in rels:
        real = os.path.realpath(os.path.join(base, rel))
        if not (real == real_root or real.startswith(real_root + os.sep)):
            raise VerificationError(f"restore refused: symlink {rel} resolves outside the target folder",
                                    hint="the archive is hostile; nothing was written outside the target")


def _apply_folder_metadata(lines, staging: Staging) -> None:
    """Folder modes and mtimes, applied once every entry exists (creating entries changes a folder's mtime)."""
    for rel, mode, mtime_ns in _reversed_lines(lines):
        fd = _folder(staging.fd, rel.split("/")) if rel else os.dup(staging.fd)
        try:
            os.fchmod(fd, mode)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)


def _reversed_lines(handle) -> Iterator[list]:
    """Deepest folders first; only line offsets are held in memory."""
    handle.seek(0)
    offsets = []
    position = 0
    for line in iter(handle.readline, ""):
        offsets.append(position)
        position += len(line.encode("utf-8"))
    for offset in reversed(offsets):
        handle.seek(offset)
        yield json.loads(handle.readline())


def extract_member(path: Path, member: str, dest_file: Path, progress: Progress | None = None) -> str:
    """Verify `path`, then write its file member `member` (e.g. 'database/mobius.db') atomically to `dest_file`.

    Returns the member's sha256 (checked against the manifest when the archive has one).
    """
    path = Path(path).expanduser().resolve()
    member = normalize(member)
    report, index = scan(path, progress)
    try:
        if not report.ok:
            raise refuse(report)
        expected = index.expected_sha256(member) if report.has_manifest else None
        row = index.db.execute("SELECT type FROM seen WHERE path=?", (member.encode("utf-8", "surrogateescape"),))
        found = row.fetchone()
        if found is None or found[0] != FILE:
            raise InputError(f"{path.name} has no file member {member!r}",
                             hint="`mobius backup verify --json` lists the extras the archive holds")
        digest = hashlib.sha256()
        with ArchiveReader(path, progress) as reader, atomic_write(Path(dest_file), "wb") as out:
            for info in reader.members():
                if normalize(info.name) == member and kind(info) == FILE:
                    for chunk in reader.chunks(info):
                        digest.update(chunk)
                        out.write(chunk)
                    break
            if expected and digest.hexdigest() != expected:
                raise VerificationError(f"{member} in {path.name} does not match the manifest",
                                        hint="the archive changed since it was verified; verify it again")
    finally:
        index.close()
    return digest.hexdigest()
