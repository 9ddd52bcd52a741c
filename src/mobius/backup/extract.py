"""Extraction: a verified archive's members written into a staging folder, never through a link.

Every member's name, type and link is checked (see member_rules) and every file's sha256 as it is
written; writes go through folder fds (no path walks); symlinks are created last and resolved for
real; folder modes and mtimes are applied deepest first once everything exists. `restore` swaps
the finished staging folder in; `trial_restore` compares it with the manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mobius.backup.manifest import DIR, FILE, MANIFEST_NAME, SUMS_NAME
from mobius.backup.member_index import MemberIndex
from mobius.backup.member_rules import kind, member_problem, normalize
from mobius.backup.reader import ArchiveDamaged, ArchiveReader
from mobius.backup.verify import VerifyReport, scan
from mobius.errors import InputError, VerificationError
from mobius.progress import Progress
from mobius.safety.atomic import atomic_write
from mobius.safety.leftovers import rmtree_writable, sweep

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
        rmtree_writable(path)


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


def extract_tree(path: Path, report: VerifyReport, index: MemberIndex, root: str, staging: Staging,
                 scratch: Path, progress: Progress) -> ExtractCounts:
    """Second pass: write every member under `root` into staging, hashing files against the manifest."""
    result = ExtractCounts()
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
                    entry = index.expected(name) if report.has_manifest else None
                    mode = entry.mode if entry else info.mode
                    mtime_ns = entry.mtime_ns if entry else int(info.mtime) * 1_000_000_000
                    if what == DIR:
                        if rel:
                            os.close(_folder(staging.fd, rel.split("/")))
                        folders.write(json.dumps([rel, safe_mode(DIR, mode), mtime_ns]) + "\n")
                        result.dirs += 1
                    elif what == FILE:
                        _write_file(reader, info, name, rel, staging, index if report.has_manifest else None,
                                    safe_mode(FILE, mode), mtime_ns)
                        result.files += 1
                        result.bytes += info.size
                    else:
                        links.write(json.dumps([rel, info.linkname, mtime_ns]) + "\n")
                        result.symlinks += 1
            except ArchiveDamaged as exc:
                raise VerificationError(f"restore failed: {path.name} unreadable at {reader.current}: {exc}",
                                        hint="the archive changed since it was verified; verify it again") from None
            sha256, _, _ = reader.finish()
        if report.sha256 and sha256 != report.sha256:
            raise VerificationError(f"restore failed: {path.name} changed while it was being restored",
                                    hint="make sure nothing writes to the backups folder, then run again")
        links.seek(0)
        _make_links(links, staging)
        folders.seek(0)
        _apply_folder_metadata(folders, staging)
    finally:
        links.close()
        folders.close()
    return result


def _write_file(reader: ArchiveReader, info, name: str, rel: str, staging: Staging, index: MemberIndex | None,
                mode: int, mtime_ns: int) -> None:
    parts = rel.split("/")
    parent = _folder(staging.fd, parts[:-1])
    try:
        try:
            fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=parent)
        except FileExistsError:
            raise VerificationError(f"restore refused: {name} appears twice in the archive",
                                    hint="the archive is hostile or damaged") from None
        digest = hashlib.sha256()
        with open(fd, "wb", buffering=0) as out:
            for chunk in reader.chunks(info):
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[out.write(view):]
            os.fchmod(out.fileno(), mode)
            os.utime(out.fileno(), ns=(mtime_ns, mtime_ns))
        expected = index.expected_sha256(name) if index else None
        if expected and expected != digest.hexdigest():
            raise VerificationError(f"restore failed: {name} does not match its sha256 in the manifest",
                                    hint="the archive changed since it was verified; verify it again")
    finally:
        os.close(parent)


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
