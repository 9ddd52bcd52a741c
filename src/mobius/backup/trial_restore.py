"""`test-restore`: the runbook's test restore, into a scratch folder, compared entry by entry, cleaned up.

(Named trial_restore so the module does not shadow the `test_restore` function in `mobius.backup`.)
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobius.backup import catalog
from mobius.backup.extract import STAGING_PREFIX, relative_to_root, remove_stale_staging, rmtree, safe_mode
from mobius.backup.manifest import DIR, FILE, LIBRARY_ROOT, SYMLINK
from mobius.backup.member_index import MemberIndex, text
from mobius.backup.restore import restore_tree
from mobius.backup.verify import MAX_DETAILS, VerifyReport
from mobius.errors import VerificationError
from mobius.log import get_logger
from mobius.progress import Progress
from mobius.results import Report, failed, passed
from mobius.safety.hashing import hash_files


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
    snapshot: str | None = None  # the snapshot restored, when it was one (else the archive)

    __test__ = False  # not a pytest class

    def report(self) -> Report:
        """The same findings as a results.Report: one failed check per entry that differs, or one passed check."""
        where = str(self.archive)
        checks = [failed("backup.test_restore", detail=line, source=where) for line in self.mismatches]
        if not self.ok and not checks:
            checks.append(failed("backup.test_restore", detail="restored entries differ", source=where))
        if not checks:
            against = "the manifest" if self.has_manifest else "the archive's own listing"
            checks.append(passed("backup.test_restore", self.compared, unit="entries", source=where,
                                 detail=f"{self.files} files, {self.bytes} bytes restored and compared with {against}"))
        return Report(f"test-restore of {f'snapshot {self.snapshot}' if self.snapshot else self.archive.name}",
                      checks)

    def raise_if_failed(self) -> TestRestoreReport:
        """VerificationError (exit 2) naming every entry that differs, as `backup test-restore` exits; else self."""
        if self.ok:
            return self
        if self.snapshot:
            raise VerificationError(f"test-restore: {len(self.mismatches)} restored entries differ from snapshot "
                                    f"{self.snapshot}", hint="do not rely on this snapshot; make a new backup",
                                    details=self.mismatches)
        raise VerificationError(f"test-restore: {len(self.mismatches)} restored entries differ from "
                                f"{'the manifest' if self.has_manifest else 'the archive'} ({self.archive.name})",
                                hint="do not rely on this backup; make a new one", details=self.mismatches)

    def to_dict(self) -> dict[str, Any]:
        return {"archive": self.archive, "ok": self.ok, "compared": self.compared, "files": self.files,
                "bytes": self.bytes, "seconds": round(self.seconds, 3), "has_manifest": self.has_manifest,
                "mismatches": self.mismatches, "notes": self.notes}


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
        rel = relative_to_root(text(path), root)
        if rel is not None:
            yield rel, type_, size, mode, mtime_ns, text(target), sha, exact


def test_restore(path: Path, *, scratch: Path | None = None, progress: Progress | None = None) -> TestRestoreReport:
    """Restore into a scratch folder (beside the archive by default), compare every entry, clean up.

    Entries that differ are findings, not an exception (`.ok`, `.report()`): a caller that must stop calls
    `.raise_if_failed()` (VerificationError, exit 2). An archive that cannot be restored at all still raises."""
    path = Path(path).expanduser().resolve()
    started = time.monotonic()
    base = Path(scratch) if scratch else path.parent
    remove_stale_staging(base)
    holder = base / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-test"
    holder.mkdir(parents=True, mode=0o700)
    try:
        result, report, index = restore_tree(path, holder / "restored", LIBRARY_ROOT, progress)
        try:
            outcome = _compare_tree(holder / "restored", report, index, result.member_root)
        finally:
            index.close()
    finally:
        rmtree(holder)
    outcome.archive = path
    outcome.has_manifest = report.has_manifest
    outcome.notes = list(report.notes)
    outcome.seconds = time.monotonic() - started
    catalog.append_event(path, {"event": "backup.test_restore", **outcome.to_dict()})
    get_logger().info("backup.test_restore.done", archive=str(path), ok=outcome.ok, compared=outcome.compared)
    return outcome


test_restore.__test__ = False  # a library function, not a pytest test, when imported into a test module


def _compare_tree(tree: Path, report: VerifyReport, index: MemberIndex, root: str) -> TestRestoreReport:
    return compare_tree(tree, _reference(report, index, root), report.path)


def compare_tree(tree: Path, reference: Iterator[tuple], archive: Path) -> TestRestoreReport:
    """Every entry of `reference` ((rel, type, size, mode, mtime_ns, target, sha256, exact_mtime) rows)
    against the restored `tree`: type, mode, mtime, size, target, each file's sha256 re-read; nothing extra."""
    outcome = TestRestoreReport(archive=archive, ok=True)
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
    for rel, type_, size, mode, mtime_ns, target, sha, exact in reference:
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
