"""`finalize`: after a migration proved itself, remove the old source, but only once the target
re-verifies against its manifest (every byte read again) and a person confirms.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mobius.config import Workspace
from mobius.errors import InputError, VerificationError
from mobius.log import get_logger
from mobius.media.destination import Destination, open_destination
from mobius.media.journal import MigrationRecord
from mobius.media.manifest import read_manifest
from mobius.media.migrate import migration_lock, now_iso
from mobius.media.rollback import find_record, open_journal
from mobius.progress import NoProgress, Progress
from mobius.records import records_call
from mobius.results import Report, failed, passed
from mobius.safety.atomic import fsync_dir
from mobius.safety.hashing import default_workers
from mobius.safety.tree import FILE

log = get_logger()


@dataclass
class TargetCheck:
    """A migration's target re-read against its manifest; `source` is the old library a failure keeps."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    target: str = ""
    manifest: str = ""
    source: str = ""

    def problems(self) -> list[str]:
        return ([f"missing: {p}" for p in self.missing] + [f"extra: {p}" for p in self.extra]
                + [f"changed: {p} (sha256 differs)" for p in self.changed]
                + [f"unreadable: {p}" for p in self.unreadable])

    def report(self) -> Report:
        """The same findings as a results.Report: one failed check per file named, or one passed check."""
        checks = [failed("media.target", detail=line, source=self.manifest) for line in self.problems()]
        if not checks:
            checks.append(passed("media.target", self.checked, unit="files", source=self.manifest,
                                 detail=f"every file at {self.target} re-read and matches the manifest"))
        return Report(f"media finalize check of {self.target}", checks)

    def raise_if_failed(self) -> TargetCheck:
        """VerificationError (exit 2) naming every difference, as `media finalize` exits before deleting; else self."""
        problems = self.problems()
        if problems:
            raise VerificationError(
                f"the target {self.target} does not match its manifest; the old source {self.source} was kept",
                hint=f"nothing was deleted. If these are edits made to the library in use, they exist only in "
                     f"{self.target}: keep them there (a rollback would leave them behind, and migrating "
                     f"to it again refuses to overwrite them); if the target was damaged, restore those files "
                     f"from {self.source}", details=problems)
        return self

    def to_dict(self) -> dict[str, object]:
        return {"checked": self.checked, "missing": self.missing, "extra": self.extra, "changed": self.changed,
                "unreadable": self.unreadable}


def verify_destination(dest: Destination, manifest: Path, *, workers: int | None = None,
                       progress: Progress | None = None) -> TargetCheck:
    """Re-read every file at a destination (past the page cache, or a GET per object) against a manifest."""
    progress = progress or NoProgress()
    expected = read_manifest(manifest)
    listing = dest.listing()
    check = TargetCheck(target=dest.url, manifest=str(manifest))
    stored_files = {p for p, s in listing.items() if s.kind == FILE}
    check.missing = sorted(p for p in expected if p not in stored_files)
    check.extra = sorted(p for p in stored_files if p not in expected)
    present = sorted(p for p in expected if p in stored_files)
    progress.start("verify target", sum(listing[p].size for p in present), unit="bytes")

    def one(path: str) -> tuple[str, str | None]:
        try:
            return path, dest.read(path, progress.advance)
        except Exception as exc:  # noqa: BLE001 - OSError locally, client errors on object storage
            log.error("media.finalize.unreadable", path=path, error=str(exc))
            return path, None

    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        for path, digest in pool.map(one, present):
            if digest is None:
                check.unreadable.append(path)
            elif digest != expected[path]:
                check.changed.append(path)
            else:
                check.checked += 1
    progress.finish()
    return check


@dataclass
class FinalizeResult:
    record: MigrationRecord
    check: TargetCheck
    removed: str

    def to_dict(self) -> dict[str, object]:
        return {"migration": self.record.to_dict(), "target_check": self.check.to_dict(), "removed": self.removed}


@records_call("media.finalize", ref=lambda result: result.record.id)
def finalize(ws: Workspace, migration_id: str, *, confirm: Callable[[str], bool], workers: int | None = None,
             progress: Progress | None = None, report: Callable[[str], None] | None = None) -> FinalizeResult:
    """Re-verify the target of a completed migration, then (confirmed) delete its old source."""
    report = report or (lambda line: None)
    with migration_lock(ws):
        journal = open_journal(ws)
        try:
            record = find_record(journal, migration_id, ("completed",))
            if record.status not in ("completed", "finalizing"):
                raise InputError(f"migration {record.id} is {record.status}; only a completed migration can be "
                                 "finalized")
            if ws.library.rstrip("/") != record.target:
                raise InputError(f"the library is {ws.library}, not the target of migration {record.id}",
                                 hint="finalize only the migration the workspace uses")
            source = Path(record.source)
            dest = open_destination(record.target, ws)
            report(f"finalize: re-reading every file at {record.target} against {record.target_manifest} ...")
            check = verify_destination(dest, Path(record.target_manifest or ""), workers=workers, progress=progress)
            check.target, check.source = record.target, str(source)
            if problems := check.problems():
                log.error("media.finalize.target_damaged", migration=record.id, problems=len(problems))
            check.raise_if_failed()
            report(f"finalize: target verified: {check.checked} files match the manifest")
            if record.status == "completed" and not confirm(f"Delete the old library {source} "
                                                            f"({record.files} files)?"):
                raise InputError("not confirmed; the old source was kept")
            record.status = "finalizing"
            journal.save(record)
            if source.exists():
                shutil.rmtree(source)
                fsync_dir(source.parent)
            record.status = "finalized"
            record.updated = now_iso()
            journal.save(record)
            report(f"finalize: removed {source}")
            log.info("media.finalize.done", migration=record.id, removed=str(source))
            return FinalizeResult(record, check, str(source))
        finally:
            journal.close()



