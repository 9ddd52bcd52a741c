"""`verify` of snapshots: structure and references, or (`read_data`) every byte of every pack they need.

Structure: each snapshot file is whole (its own checksum line), every file's blob is in the
index, every pack the index names for them is present with the indexed size. With `read_data`
each needed pack is re-read from the device: its sha256 must be its name, every blob's tar
header and content must match; a damaged byte is reported as the files (in which snapshots) it
affects, so the person knows what an older snapshot must give back.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mobius.backup.index import ReferencedBlobs, RepositoryIndex
from mobius.backup.pack import PackCheck, check_pack, pack_path
from mobius.backup.repository import Repository
from mobius.backup.snapshot import SnapshotDamaged, read_entries, read_records
from mobius.errors import InputError, VerificationError
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress
from mobius.results import Report, failed, passed

MAX_PROBLEMS = 100
READ_THREADS = 2


@dataclass
class SnapshotCheck:
    """What `verify` found for the snapshots it checked."""

    repository: str
    snapshots: list[str]
    read_data: bool
    files: int = 0
    blobs: int = 0
    packs: int = 0
    packs_read: int = 0
    bytes_read: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    damaged_files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def problem(self, line: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(line)

    def report(self) -> Report:
        """The same findings as a results.Report: one failed check per problem, or one passed check."""
        where = f"{len(self.snapshots)} snapshot(s) of {self.repository}"
        checks = [failed("backup.snapshot", detail=line, source=where) for line in self.problems]
        if self.problem_count > len(self.problems):
            checks.append(failed("backup.snapshot", detail=f"and {self.problem_count - len(self.problems)} more "
                                 "problem(s)", source=where))
        if not checks:
            detail = (f"every byte of {self.packs_read} pack(s) re-read, every blob matches" if self.read_data
                      else "structure and references")
            checks.append(passed("backup.snapshot", self.files, unit="files", source=where, detail=detail))
        return Report(f"backup verify of {where}", checks)

    def raise_if_failed(self) -> SnapshotCheck:
        """VerificationError (exit 2) naming every problem found, as `backup verify` exits; else self."""
        if not self.ok:
            raise VerificationError(f"backup verify: {self.problem_count} problem(s) in {len(self.snapshots)} "
                                    f"snapshot(s) of {self.repository}",
                                    hint="restore from a snapshot that verifies; make a new backup",
                                    details=self.problems)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "snapshot", "repository": self.repository, "snapshots": self.snapshots,
                "read_data": self.read_data, "files": self.files, "blobs": self.blobs, "packs": self.packs,
                "packs_read": self.packs_read, "bytes_read": self.bytes_read, "ok": self.ok,
                "problems": self.problems, "problem_count": self.problem_count,
                "damaged_files": self.damaged_files[:MAX_PROBLEMS], "seconds": round(self.seconds, 3)}


def verify_snapshots(repo: Repository, snapshot: str | None = None, *, read_data: bool = False,
                     progress: Progress | None = None) -> SnapshotCheck:
    """Check one snapshot (or all); raise VerificationError (exit 2) naming every problem found."""
    return check_snapshots(repo, snapshot, read_data=read_data, progress=progress).raise_if_failed()


def check_snapshots(repo: Repository, snapshot: str | None = None, *, read_data: bool = False,
                    progress: Progress | None = None) -> SnapshotCheck:
    """Check one snapshot (or all) and return what was found, damage included (`.ok`, `.report()`,
    `.raise_if_failed()`); raises only for bad input (no such snapshot, none at all)."""
    progress = progress or NoProgress()
    started = time.monotonic()
    with repo.lock(exclusive=False, what=f"a prune of {repo.root}"):
        ids = [repo.require(snapshot)] if snapshot else repo.snapshot_ids()
        if not ids:
            raise InputError(f"no snapshots in {repo.location}",
                             hint="name an archive to verify, or make a snapshot: `mobius backup create --snapshot`")
        report = SnapshotCheck(repository=repo.location, snapshots=ids, read_data=read_data)
        index = RepositoryIndex.load(repo.index, repo.keys)
        for line in index.unreadable:
            report.problem(f"index: {line}")
        referenced = _referenced(repo, ids, report, index)
        report.blobs = len(referenced)
        needed = referenced.packs()
        unindexed = referenced.unindexed  # blobs in no pack; with `lost` (in a missing pack): files named at the end
        lost: set[str] = set()
        report.packs = len(needed)
        progress.start("verify", total=sum(index.packs[p].size for p in needed) if read_data else len(needed),
                       unit="bytes" if read_data else "packs")
        present = []
        for pack, count in sorted(needed.items()):
            size = repo.pack_size(pack)
            if size is None:
                report.problem(f"missing: pack {pack}, needed by {count} blobs")
                lost.update(referenced.in_pack(pack))
                continue
            if size != index.packs[pack].size:
                report.problem(f"damaged: pack {pack} holds {size} bytes, the index says {index.packs[pack].size}")
            present.append(pack)
            if not read_data:
                progress.advance(1)
        damaged: dict[str, list[tuple[str, str]]] = {}  # blob -> (why, pack)
        if read_data:  # two packs at a time: reading, sha256 and zstd release the GIL
            with ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="verify-pack") as pool:
                def check(name: str) -> tuple[str, PackCheck]:
                    info = index.packs[name]
                    # each byte hashed once where the index keeps the writer's digest of the bytes outside stored
                    # frames (packs of this release; `check_pack`); an earlier release's packs hashed whole
                    written = (name, info.outside) if info.outside is not None else None
                    return name, check_pack(pack_path(repo.packs, name), info.blobs, keys=repo.keys, written=written)

                checks = pool.map(check, present)
                for pack, check in checks:
                    report.packs_read += 1
                    report.bytes_read += check.size
                    progress.advance(check.size)
                    if check.sha256 != pack:
                        report.problem(f"damaged: pack {pack} reads back with sha256 {check.sha256}")
                    for sha, why in check.damaged.items():
                        if sha in referenced:
                            damaged.setdefault(sha, []).append((why, pack))
        if unindexed or lost or damaged:
            _name_files(repo, ids, unindexed, lost, damaged, report)
        progress.finish()
    report.seconds = time.monotonic() - started
    get_logger().info("backup.snapshot.verified" if report.ok else "backup.snapshot.verify_failed",
                      snapshots=len(ids), read_data=read_data, problems=report.problem_count)
    return report


def _referenced(repo: Repository, ids: list[str], report: SnapshotCheck, index: RepositoryIndex) -> ReferencedBlobs:
    """Every blob the snapshots name, marked in the index (the files that use one are looked up only when it
    turns out missing or damaged; a table of names per blob cost 50 MB at 100,000 files)."""
    referenced = ReferencedBlobs(index)
    for snapshot_id in ids:
        try:  # the parsed records, not SnapshotEntry objects (building 100,000 of them cost 1.4 s for one field)
            for record in read_records(repo.snapshot_file(snapshot_id), repo.keys):
                sha = record.get("sha256")
                if sha is not None:
                    report.files += 1
                    referenced.add(str(sha))
        except (OSError, SnapshotDamaged) as exc:
            report.problem(f"snapshot {snapshot_id}: {exc}")
    return referenced


def _name_files(repo: Repository, ids: list[str], unindexed: set[str], lost: set[str],
                damaged: dict[str, list[tuple[str, str]]], report: SnapshotCheck) -> None:
    """A second read of the snapshots: the files (in which snapshots) each missing or damaged blob costs, up to
    20 per blob, in snapshot order."""
    users: dict[str, list[str]] = {}
    for snapshot_id in ids:
        try:
            for entry in read_entries(repo.snapshot_file(snapshot_id), repo.keys):
                if entry.sha256 in unindexed or entry.sha256 in lost or entry.sha256 in damaged:
                    names = users.setdefault(entry.sha256, [])
                    if len(names) < 20:
                        names.append(f"{entry.path} (snapshot {snapshot_id})")
        except (OSError, SnapshotDamaged):
            continue  # already reported
    for sha in sorted(unindexed, key=lambda s: users.get(s, [""])[0]):
        names = users.get(sha, [])
        report.problem(f"missing: {names[0] if names else 'a file'}: blob {sha} is in no pack")
        report.damaged_files.extend(names)
    for sha in sorted(lost, key=lambda s: users.get(s, [""])[0]):
        report.damaged_files.extend(users.get(sha, []))
    for sha, findings in damaged.items():
        for why, pack in findings:
            for name in users.get(sha, []):
                report.problem(f"damaged: {name}: {why} (pack {pack})")
                report.damaged_files.append(name)
