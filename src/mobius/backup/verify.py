"""`verify`: the archive against its sidecar, then every member against the manifest, in one read.

Everything wrong is reported, not just the first thing: each damaged, missing, unexpected or
unsafe member is named. A legacy archive (plain `tar -czf`, no manifest) is checked against
its sidecar and for a readable, safe tar structure, with a note that no per-file check exists.

Checking members is a function of the archive's bytes. Once every member of an archive passed
(its log records it, with the archive's sha256), a later verify re-reads and hashes every byte of
the archive: the same sha256 means the same bytes, so the same member checks would pass again, at
the cost of one sha256 pass instead of parsing 100,000 members. Any difference, or `deep`, runs
the member-by-member check, which names what changed. A restore always checks every member.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobius.backup import catalog
from mobius.backup.manifest import LIBRARY_ROOT, MANIFEST_NAME, SUMS_NAME, ManifestEntry, parse_header, parse_lines
from mobius.backup.member_index import MemberIndex, text
from mobius.backup.member_rules import ancestors, kind, member_problem, normalize
from mobius.backup.reader import ArchiveDamaged, ArchiveReader
from mobius.errors import InputError, VerificationError
from mobius.executor.batching import batches
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress
from mobius.results import Report, failed, passed
from mobius.safety.checksums import parse_line
from mobius.safety.hashing import sha256_file
from mobius.safety.stamps import utc_iso

MAX_DETAILS = 100
MEMBER_CHECKS = 1  # what checking members covers; bumped when that changes, so older records no longer count
LEGACY_NOTE = ("no per-file manifest in this archive (made by plain tar?): only the sidecar sha256 and a readable, "
               "safe tar structure were checked")


@dataclass
class VerifyReport:
    """The outcome of reading an archive once. `problems` are lines like 'damaged: library/x.png (sha256 differs)'."""

    path: Path
    sha256: str = ""
    expected_sha256: str | None = None
    compression: str = "unknown"
    has_manifest: bool = False
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    archive_bytes: int = 0
    seconds: float = 0.0
    root: str = LIBRARY_ROOT
    extras: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def problem(self, category: str, what: str, total: int = 1) -> None:
        self.counts[category] = self.counts.get(category, 0) + total
        self.problem_count += total
        if len(self.problems) < MAX_DETAILS:
            self.problems.append(f"{category}: {what}")

    def more(self, category: str, count: int) -> None:
        self.counts[category] = self.counts.get(category, 0) + count
        self.problem_count += count
        self.problems.append(f"{category}: ... and {count} more")

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "sha256": self.sha256, "expected_sha256": self.expected_sha256,
                "compression": self.compression, "has_manifest": self.has_manifest, "files": self.files,
                "dirs": self.dirs, "symlinks": self.symlinks, "bytes": self.bytes,
                "archive_bytes": self.archive_bytes, "seconds": round(self.seconds, 3), "root": self.root,
                "extras": self.extras, "notes": self.notes, "problems": self.problems,
                "problem_count": self.problem_count, "counts": self.counts}

    def report(self) -> Report:
        """The same findings as a results.Report: one failed check per problem named, or one passed check."""
        where = str(self.path)
        checks = [failed("backup.archive", detail=line, source=where) for line in self.problems]
        if self.problem_count > len(self.problems):
            checks.append(failed("backup.archive", detail=f"and {self.problem_count - len(self.problems)} more "
                                 "problem(s)", source=where))
        if not checks:
            checks.append(passed("backup.archive", self.files, unit="files", source=where,
                                 detail=f"sha256 {self.sha256[:16]}... matches the sidecar"
                                        + ("; every member matches the manifest" if self.has_manifest else "")))
        return Report(f"backup verify of {self.path.name}", checks)

    def raise_if_failed(self) -> VerifyReport:
        """VerificationError (exit 2) naming every problem found, as `backup verify` exits; else self."""
        if not self.ok:
            raise self.error()
        return self

    def error(self) -> VerificationError:
        parts = [f"{n} {c}" for c, n in self.counts.items() if c != "archive"]
        if "archive" in self.counts:
            parts.append("the archive fails its sidecar check")
        summary = ", ".join(parts)
        details = list(self.problems)
        if len(details) >= MAX_DETAILS:
            details.append("... (the list stops here; `--json` and the backup's log have the counts)")
        return VerificationError(f"backup verify: {self.path.name} failed: {summary}",
                                 hint="do not restore from this archive; use another backup", details=details)


def verify_archive(path: Path, progress: Progress | None = None, *, deep: bool = False) -> VerifyReport:
    """Check `path` against its sidecar and manifest; the findings, each problem named (`.ok`, `.report()` a
    results.Report). A damaged archive is a finding, not an exception: a caller that must stop calls
    `.raise_if_failed()` (VerificationError, exit 2). A missing file still raises InputError (exit 1).

    Every byte of the archive is read either way; unless `deep`, members already checked at this
    sha256 are not parsed again (see the module's docstring).
    """
    if not deep:
        report = _unchanged_since_checked(Path(path).expanduser().resolve(), progress)
        if report is not None:
            return report
    report, index = scan(path, progress)
    index.close()
    return report


def scan(path: Path, progress: Progress | None = None, *, record: bool = True) -> tuple[VerifyReport, MemberIndex]:
    """Read the archive once and compare; returns the report and the index (the caller closes it)."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise InputError(f"no archive at {path}", hint="`mobius backup list` shows the backups")
    started = time.monotonic()
    report = VerifyReport(path=path)
    try:
        report.expected_sha256 = catalog.read_sidecar(path)
    except InputError as exc:
        report.problem("archive", exc.message)
    index = _check_members(ArchiveReader(path, progress), report)
    if report.expected_sha256 is None and "archive" not in report.counts:
        report.problem("archive", f"no sidecar {catalog.sidecar_path(path).name}; cannot check the archive's sha256")
    elif report.expected_sha256 and report.expected_sha256 != report.sha256:
        report.problem("archive", f"sha256 {report.sha256} differs from the sidecar's {report.expected_sha256}")
    report.seconds = time.monotonic() - started
    _record(path, report, members_at=utc_iso() if report.ok and report.has_manifest else None, to_log=record)
    return report, index


def check_stream(fd: int, path: Path, *, hashed: bool = False, progress: Progress | None = None) -> VerifyReport:
    """Every member of the archive read from `fd` (closed here), checked as `scan` checks a file;
    `path` only names the archive. Unless `hashed`, the whole is counted (`archive_bytes`), not
    hashed: for a pipe from a writer that hashed it and re-reads the file it wrote. Nothing is
    logged: this checks an archive as it is written (see write_check)."""
    started = time.monotonic()
    report = VerifyReport(path=path)
    _check_members(ArchiveReader(path, progress, fd=fd, hashed=hashed), report).close()
    report.seconds = time.monotonic() - started
    return report


def record_members_checked(path: Path, report: VerifyReport) -> None:
    """Log a passed check of every member of `path` (as a full verify does): a later verify of the
    same bytes then hashes the archive instead of parsing every member again."""
    _record(path, report, members_at=utc_iso())


def _check_members(reader: ArchiveReader, report: VerifyReport) -> MemberIndex:
    index = MemberIndex()
    try:
        _read(reader, report, index)
        if report.has_manifest:
            _compare(report, index)
        else:
            report.notes.append(LEGACY_NOTE)
    except BaseException:
        index.close()
        raise
    return index


def _record(path: Path, report: VerifyReport, *, members_at: str | None, to_log: bool = True) -> None:
    """The verify's event in the backup's log (`to_log`) and in the run's log. `members_at`: when every
    member was checked and passed; kept with the counts, so that an unchanged archive needs no second one."""
    event = {"event": "backup.verified" if report.ok else "backup.verify_failed", "sha256": report.sha256,
             "files": report.files, "bytes": report.bytes, "seconds": round(report.seconds, 3),
             "problems": report.problems[:20], "problem_count": report.problem_count}
    if members_at is not None:
        event.update({"member_checks": MEMBER_CHECKS, "members_checked_at": members_at,
                      "report": {"compression": report.compression, "files": report.files, "dirs": report.dirs,
                                 "symlinks": report.symlinks, "bytes": report.bytes,
                                 "archive_bytes": report.archive_bytes, "root": report.root,
                                 "extras": report.extras}})
    if to_log:
        catalog.append_event(path, event)
    get_logger().info("backup.verify.done", archive=str(path), ok=report.ok, files=report.files,
                      bytes=report.bytes, seconds=round(report.seconds, 3), problem_count=report.problem_count,
                      members_checked_at=members_at)


def _last_check(path: Path, sha256: str) -> dict[str, Any] | None:
    """The log's last verify event when it passed with every member checked at `sha256`, else None."""
    last = None
    for event in catalog.read_events(path):
        if event.get("event") in catalog.VERIFY_EVENTS:
            last = event
    if (last is None or last.get("event") != "backup.verified" or last.get("sha256") != sha256
            or last.get("member_checks") != MEMBER_CHECKS or not isinstance(last.get("report"), dict)):
        return None
    return last


def _unchanged_since_checked(path: Path, progress: Progress | None) -> VerifyReport | None:
    """A passed report when every byte of `path` hashes to the sha256 at which its members were all
    checked (and its sidecar still names that sha256); None when the members must be checked again."""
    progress = progress or NoProgress()
    try:
        expected = catalog.read_sidecar(path)
        last = _last_check(path, expected) if expected else None
        size = os.stat(path).st_size
        if last is None or size != last["report"].get("archive_bytes"):
            return None
        started = time.monotonic()
        progress.start(f"verify {path.name}", total=size, unit="bytes")
        sha256 = sha256_file(path, on_bytes=progress.advance)
        progress.finish()
    except (OSError, InputError):
        return None  # the full check says what is wrong
    if sha256 != expected:
        return None
    fields = last["report"]
    report = VerifyReport(path=path, sha256=sha256, expected_sha256=expected, has_manifest=True,
                          compression=str(fields.get("compression")), files=int(fields.get("files", 0)),
                          dirs=int(fields.get("dirs", 0)), symlinks=int(fields.get("symlinks", 0)),
                          bytes=int(fields.get("bytes", 0)), archive_bytes=int(fields.get("archive_bytes", 0)),
                          root=str(fields.get("root", LIBRARY_ROOT)), extras=list(fields.get("extras", [])))
    at = last.get("members_checked_at", last.get("at"))
    report.notes.append(f"every byte re-read: sha256 unchanged since each member was checked ({at}); "
                        "--deep checks every member again")
    report.seconds = time.monotonic() - started
    _record(path, report, members_at=at)
    return report


def _lines(chunks) -> Any:
    """Lines (bytes) from a stream of chunks, never holding more than one chunk plus a line."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *lines, rest = rest.split(b"\n")
        yield from lines
    if rest:
        yield rest


def _read(reader: ArchiveReader, report: VerifyReport, index: MemberIndex) -> None:
    seq = 0
    tops: set[str] = set()
    with reader:
        try:
            for info in reader.members():
                seq += 1
                name = normalize(info.name)
                what = kind(info)
                if seq == 1 and name == MANIFEST_NAME and what == "file":
                    _load_manifest(reader, info, report, index)
                    continue
                if name == SUMS_NAME and report.has_manifest and what == "file":
                    index.add_sums(_parse_sums(reader, info, report))
                    continue
                problem = member_problem(info, LIBRARY_ROOT if report.has_manifest else "")
                if problem is None and index.links and any(index.is_link(a) for a in ancestors(name)):
                    problem = "inside a symlinked folder (would write through a link)"
                if problem:
                    report.problem("unsafe", f"{info.name} ({problem})")
                if name and len(tops) < 2:
                    tops.add(name.split("/", 1)[0] if "/" in name or what == "dir" else "/")
                sha = None
                if what == "file":
                    sha = _hash(reader, info)
                    report.files += 1
                    report.bytes += info.size
                elif what == "dir":
                    report.dirs += 1
                elif what == "symlink":
                    report.symlinks += 1
                index.add_seen(seq, name, what, info.size if what == "file" else 0, info.mode, int(info.mtime),
                               info.linkname if what == "symlink" else None, sha)
        except ArchiveDamaged as exc:
            where = f"at member {reader.current}" if reader.current else "at its start"
            report.problem("damaged", f"archive unreadable {where}: {exc}")
        report.compression = reader.codec
        report.sha256, report.archive_bytes, complete = reader.finish()
        if not reader.damaged and not (complete and reader.ended):
            report.problem("damaged", "archive ends early: no tar end-of-archive marker or an unfinished "
                                      "compressed stream (truncated)")
    index.flush()
    if seq == 0 and not report.problem_count:
        report.problem("damaged", "no members: not a tar archive or empty")
    if not report.has_manifest:
        report.root = _legacy_root(tops)


def _legacy_root(tops: set[str]) -> str:
    if LIBRARY_ROOT in tops:
        return LIBRARY_ROOT
    top = next(iter(tops)) if len(tops) == 1 else "/"
    return "" if top == "/" else top


def _hash(reader: ArchiveReader, info) -> str:
    digest = hashlib.sha256()
    for chunk in reader.chunks(info):
        digest.update(chunk)
    return digest.hexdigest()


def _load_manifest(reader: ArchiveReader, info, report: VerifyReport, index: MemberIndex) -> None:
    lines = _lines(reader.chunks(info))
    header = parse_header(next(lines, b"").decode("utf-8", "surrogateescape"))
    if header is None:
        for _ in lines:
            pass
        report.notes.append(f"first member {MANIFEST_NAME} is not a Mobius manifest; treated as a legacy archive")
        return
    report.has_manifest = True
    report.root = str(header.get("root", LIBRARY_ROOT))
    report.extras = list(header.get("extras", []))
    count = 0
    number = 1  # the header's line
    for chunk in batches(lines, 2000):
        batch: list[tuple[int, ManifestEntry]] = []
        for entry in parse_lines(chunk):
            number += 1
            if entry is None:
                report.problem("damaged", f"{MANIFEST_NAME} line {number} is not a manifest entry")
                continue
            count += 1
            batch.append((count, entry))
        index.add_expected(batch)
    if count != int(header.get("entries", count)):
        report.problem("damaged", f"{MANIFEST_NAME} lists {count} entries, its header says {header.get('entries')}")


def _parse_sums(reader: ArchiveReader, info, report: VerifyReport):
    for number, line in enumerate(_lines(reader.chunks(info)), 1):
        if not line.strip():
            continue
        try:
            yield parse_line(line.decode("utf-8", "surrogateescape"))
        except ValueError:
            report.problem("damaged", f"{SUMS_NAME} line {number} is not a sha256sum line")


def _compare(report: VerifyReport, index: MemberIndex) -> None:
    limit = MAX_DETAILS
    if index.db.execute("SELECT count(*) FROM sums").fetchone()[0] == 0 and report.files:
        report.problem("missing", f"{SUMS_NAME} (the last member, with every file's sha256): archive truncated?")
    checks = [
        ("missing", "SELECT e.path, NULL FROM expected e LEFT JOIN seen s ON s.path=e.path "
                    "WHERE s.path IS NULL ORDER BY e.seq"),
        ("unexpected", "SELECT s.path, NULL FROM seen s LEFT JOIN expected e ON e.path=s.path "
                       "WHERE e.path IS NULL ORDER BY s.seq"),
        ("damaged", "SELECT path, 'member appears more than once' FROM seen WHERE dup > 0 ORDER BY seq"),
        ("damaged", "SELECT s.path, CASE WHEN s.type != e.type THEN 'is a ' || s.type || ', manifest says ' || e.type "
                    "WHEN e.type='file' AND s.size != e.size THEN 'size ' || s.size || ' != manifest ' || e.size "
                    "WHEN s.mode != (e.mode & 4095) THEN printf('mode %o != manifest %o', s.mode, e.mode & 4095) "
                    "WHEN s.mtime != e.mtime_ns / 1000000000 THEN 'mtime differs from the manifest' "
                    "ELSE 'symlink target differs from the manifest' END "
                    "FROM seen s JOIN expected e ON e.path=s.path WHERE s.type != e.type "
                    "OR (e.type='file' AND s.size != e.size) OR s.mode != (e.mode & 4095) "
                    "OR s.mtime != e.mtime_ns / 1000000000 OR (e.type='symlink' AND s.target IS NOT e.target) "
                    "ORDER BY s.seq"),
        ("damaged", "SELECT s.path, 'sha256 differs' FROM seen s JOIN sums m ON m.path=s.path "
                    "WHERE s.type='file' AND s.sha256 != m.sha256 ORDER BY s.seq"),
    ]
    if index.db.execute("SELECT count(*) FROM sums").fetchone()[0]:
        checks += [
            ("damaged", f"SELECT e.path, 'no sha256 in {SUMS_NAME}' FROM expected e LEFT JOIN sums m "
                        "ON m.path=e.path WHERE e.type='file' AND m.path IS NULL ORDER BY e.seq"),
            ("unexpected", f"SELECT m.path, 'listed in {SUMS_NAME} only' FROM sums m LEFT JOIN expected e "
                           "ON e.path=m.path WHERE e.path IS NULL"),
        ]
    for category, sql in checks:
        total, rows = index.query(sql, limit)
        for path, why in rows:
            name = text(path)
            report.problem(category, f"{name} ({why})" if why else name)
        if total > len(rows):
            report.more(category, total - len(rows))
