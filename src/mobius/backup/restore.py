"""`restore` and `test-restore`: verified archives back into folders, never through a link.

Restore verifies the whole archive first, then extracts into a temporary folder beside the
target, checking every member's name, type and link itself (see member_rules) and every
file's sha256 as it is written. Symlinks are created last and then resolved for real; only a
complete, checked tree is swapped in by rename. An existing target is moved aside to
`<DIR>.rollback.<UTC stamp>`, never deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobius.backup import catalog
from mobius.backup.manifest import DIR, FILE, LIBRARY_ROOT, MANIFEST_NAME, SUMS_NAME, SYMLINK
from mobius.backup.member_index import MemberIndex, text
from mobius.backup.member_rules import kind, member_problem, normalize
from mobius.backup.reader import ArchiveDamaged, ArchiveReader
from mobius.backup.verify import MAX_DETAILS, VerifyReport, scan
from mobius.errors import InputError, VerificationError
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress
from mobius.safety.atomic import atomic_write
from mobius.safety.diskspace import require_free_space
from mobius.safety.hashing import hash_files
from mobius.safety.leftovers import scratch_name, sweep
from mobius.safety.swap import swap_folder

STAGING_PREFIX = ".mobius-restore-"


@dataclass
class RestoreResult:
    """A restored folder; `rollback` is where the previous content went (None when there was none)."""

    archive: Path
    to: Path
    rollback: Path | None
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    seconds: float = 0.0
    has_manifest: bool = True
    member_root: str = LIBRARY_ROOT
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"archive": self.archive, "to": self.to, "rollback": self.rollback, "files": self.files,
                "dirs": self.dirs, "symlinks": self.symlinks, "bytes": self.bytes,
                "seconds": round(self.seconds, 3), "has_manifest": self.has_manifest,
                "member_root": self.member_root, "notes": self.notes}


@dataclass
class TestRestoreReport:
    """The runbook's test restore: everything restored into a scratch folder and compared with the manifest."""

    archive: Path
    ok: bool
    compared: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    has_manifest: bool = True
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    __test__ = False  # not a pytest class

    def to_dict(self) -> dict[str, Any]:
        return {"archive": self.archive, "ok": self.ok, "compared": self.compared, "files": self.files,
                "bytes": self.bytes, "seconds": round(self.seconds, 3), "has_manifest": self.has_manifest,
                "mismatches": self.mismatches, "notes": self.notes}


def safe_mode(kind_name: str, mode: int) -> int:
    """Permission bits a restore applies: no setuid/setgid on files, no setuid on folders."""
    return mode & 0o777 if kind_name == FILE else mode & 0o3777


def _refuse(report: VerifyReport) -> VerificationError:
    error = report.error()
    error.message = error.message.replace("backup verify:", "restore refused: verify of", 1)
    return error


def _root_for(report: VerifyReport, index: MemberIndex, member_root: str) -> str:
    member_root = normalize(member_root)
    if not report.has_manifest and member_root == LIBRARY_ROOT and report.root != LIBRARY_ROOT:
        return report.root
    table = "expected" if report.has_manifest else "seen"
    if member_root and index.db.execute(f"SELECT 1 FROM {table} WHERE path=? OR (path>=? AND path<?) LIMIT 1",
                                        (member_root.encode(), (member_root + "/").encode(),
                                         (member_root + "0").encode())).fetchone() is None:
        raise InputError(f"{report.path.name} holds nothing under '{member_root}/'",
                         hint="choose another member root; `tar -tf` lists what the archive holds")
    return member_root


def _relative(name: str, root: str) -> str | None:
    """The path below `root`, '' for the root itself, None when the member lies elsewhere."""
    if name in (MANIFEST_NAME, SUMS_NAME) and root == "":
        return None
    if not root:
        return name
    if name == root:
        return ""
    return name[len(root) + 1:] if name.startswith(root + "/") else None


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


class _Staging:
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
        _rmtree(self.path)


def _rmtree(path: Path) -> None:
    def unlock(func, p, _exc):
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            func(p)

    if path.exists() or path.is_symlink():
        shutil.rmtree(path, onerror=unlock)


def remove_stale_staging(parent: Path) -> None:
    """Staging folders left by killed restores (their process is gone): the shared leftovers sweep."""
    sweep([parent])


def _extract(path: Path, report: VerifyReport, index: MemberIndex, root: str, staging: _Staging,
             scratch: Path, result: RestoreResult, progress: Progress) -> None:
    """Second pass: write every member under `root` into staging, hashing files against the manifest."""
    links = open(scratch / "links.jsonl", "w+", encoding="utf-8")  # noqa: SIM115 - closed below
    folders = open(scratch / "folders.jsonl", "w+", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        with ArchiveReader(path, progress) as reader:
            try:
                for info in reader.members():
                    name = normalize(info.name)
                    rel = _relative(name, root)
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


def _write_file(reader: ArchiveReader, info, name: str, rel: str, staging: _Staging, index: MemberIndex | None,
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


def _make_links(lines, staging: _Staging) -> None:
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


def _apply_folder_metadata(lines, staging: _Staging) -> None:
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


def _restore(path: Path, to: Path, member_root: str, progress: Progress | None
             ) -> tuple[RestoreResult, VerifyReport, MemberIndex]:
    progress = progress or NoProgress()
    started = time.monotonic()
    path = Path(path).expanduser().resolve()
    to = Path(to).expanduser()
    to = to.parent.resolve() / to.name if to.name else to.resolve()
    if to.exists() and not to.is_dir():
        raise InputError(f"{to} exists and is not a folder", hint="choose a folder to restore into")
    report, index = scan(path, progress)
    try:
        if not report.ok:
            raise _refuse(report)
        root = _root_for(report, index, member_root)
        to.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(to.parent)
        require_free_space(to.parent, report.bytes, what=f"restoring {path.name} into {to}")
        result = RestoreResult(archive=path, to=to, rollback=None, has_manifest=report.has_manifest,
                               member_root=root, notes=list(report.notes))
        staging = _Staging(to.parent, to.name)
        try:
            with tempfile.TemporaryDirectory(prefix=scratch_name("restore")) as scratch:
                _extract(path, report, index, root, staging, Path(scratch), result, progress)
            os.sync()
            result.rollback = _swap(staging, to)
        except BaseException:
            staging.remove()
            raise
        staging.close()
    except BaseException:
        index.close()
        raise
    result.seconds = time.monotonic() - started
    return result, report, index


def _swap(staging: _Staging, to: Path) -> Path | None:
    """Put the staged tree at `to`; whatever was there moves to `<to>.rollback.<stamp>` (crash-safe swap)."""
    return swap_folder(staging.path, to)


def restore_archive(path: Path, to: Path, *, member_root: str = LIBRARY_ROOT,
                    progress: Progress | None = None) -> RestoreResult:
    """Verify `path`, then restore its `member_root/` tree as folder `to` (previous content kept as a rollback)."""
    result, _report, index = _restore(path, to, member_root, progress)
    index.close()
    catalog.append_event(result.archive, {"event": "backup.restored", **result.to_dict()})
    get_logger().info("backup.restore.done", archive=str(result.archive), to=str(result.to),
                      rollback=str(result.rollback) if result.rollback else None, files=result.files)
    return result


def extract_member(path: Path, member: str, dest_file: Path, progress: Progress | None = None) -> str:
    """Verify `path`, then write its file member `member` (e.g. 'database/mobius.db') atomically to `dest_file`.

    Returns the member's sha256 (checked against the manifest when the archive has one).
    """
    path = Path(path).expanduser().resolve()
    member = normalize(member)
    report, index = scan(path, progress)
    try:
        if not report.ok:
            raise _refuse(report)
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


def _reference(report: VerifyReport, index: MemberIndex, root: str) -> Iterator[tuple]:
    """What the restored tree must hold: (rel, type, size, mode, mtime_ns, target, sha256, exact_mtime)."""
    if report.has_manifest:
        sql = ("SELECT e.path, e.type, e.size, e.mode, e.mtime_ns, e.target, m.sha256 FROM expected e "
               "LEFT JOIN sums m ON m.path=e.path ORDER BY e.seq")
        exact = True
    else:
        sql = "SELECT path, type, size, mode, mtime * 1000000000, target, sha256 FROM seen ORDER BY seq"
        exact = False
    for path, type_, size, mode, mtime_ns, target, sha in index.db.execute(sql):
        rel = _relative(text(path), root)
        if rel is not None:
            yield rel, type_, size, mode, mtime_ns, text(target), sha, exact


def test_restore(path: Path, *, scratch: Path | None = None, progress: Progress | None = None) -> TestRestoreReport:
    """Restore into a scratch folder (beside the archive by default), compare every entry, clean up."""
    path = Path(path).expanduser().resolve()
    started = time.monotonic()
    base = Path(scratch) if scratch else path.parent
    remove_stale_staging(base)
    holder = base / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-test"
    holder.mkdir(parents=True, mode=0o700)
    try:
        result, report, index = _restore(path, holder / "restored", LIBRARY_ROOT, progress)
        try:
            outcome = _compare_tree(holder / "restored", report, index, result.member_root)
        finally:
            index.close()
    finally:
        _rmtree(holder)
    outcome.archive = path
    outcome.has_manifest = report.has_manifest
    outcome.notes = list(report.notes)
    outcome.seconds = time.monotonic() - started
    catalog.append_event(path, {"event": "backup.test_restore", **outcome.to_dict()})
    get_logger().info("backup.test_restore.done", archive=str(path), ok=outcome.ok, compared=outcome.compared)
    if not outcome.ok:
        raise VerificationError(f"test-restore: {len(outcome.mismatches)} restored entries differ from "
                                f"{'the manifest' if report.has_manifest else 'the archive'} ({path.name})",
                                hint="do not rely on this backup; make a new one", details=outcome.mismatches)
    return outcome


test_restore.__test__ = False  # a library function, not a pytest test, when imported into a test module


def _compare_tree(tree: Path, report: VerifyReport, index: MemberIndex, root: str) -> TestRestoreReport:
    outcome = TestRestoreReport(archive=report.path, ok=True)
    mismatches = outcome.mismatches

    def differ(rel: str, why: str) -> None:
        if len(mismatches) < MAX_DETAILS:
            mismatches.append(f"{rel or '.'}: {why}")
        outcome.ok = False

    files: list[tuple[Path, str | None]] = []  # re-read and hashed in parallel, 256 at a time

    def check_hashes() -> None:
        digests = hash_files([local for local, _sha in files])
        for (local, sha), (_path, digest) in zip(files, digests, strict=True):
            rel = str(local.relative_to(tree))
            if isinstance(digest, OSError):
                differ(rel, f"unreadable ({digest.strerror})")
            elif sha and digest != sha:
                differ(rel, "sha256 differs")
        files.clear()

    expected_count = 0
    for rel, type_, size, mode, mtime_ns, target, sha, exact in _reference(report, index, root):
        expected_count += 1
        local = tree / rel if rel else tree
        try:
            st = os.lstat(local)
        except OSError:
            differ(rel, "missing after restore")
            continue
        outcome.compared += 1
        actual = DIR if stat.S_ISDIR(st.st_mode) else SYMLINK if stat.S_ISLNK(st.st_mode) else FILE
        if actual != type_:
            differ(rel, f"restored as {actual}, archived as {type_}")
            continue
        if type_ == SYMLINK:
            if os.readlink(local) != target:
                differ(rel, "symlink target differs")
            continue
        if stat.S_IMODE(st.st_mode) != safe_mode(type_, mode):
            differ(rel, f"mode {stat.S_IMODE(st.st_mode):o} != {safe_mode(type_, mode):o}")
        same_time = st.st_mtime_ns == mtime_ns if exact else st.st_mtime_ns // 10**9 == mtime_ns // 10**9
        if not same_time:
            differ(rel, "mtime differs")
        if type_ == FILE:
            outcome.files += 1
            outcome.bytes += st.st_size
            if st.st_size != size:
                differ(rel, f"size {st.st_size} != {size}")
            else:
                files.append((local, sha))
                if len(files) >= 256:
                    check_hashes()
    check_hashes()
    present = sum(1 for _ in _walk(tree))
    if present != expected_count:
        differ("", f"{present} entries restored, {expected_count} expected (extra files appeared)")
    return outcome


def _walk(tree: Path) -> Iterator[str]:
    yield ""
    for folder, dirs, names in os.walk(tree):
        for name in dirs + names:
            yield os.path.join(folder, name)
