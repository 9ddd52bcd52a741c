"""`migrate`: move the library to a new folder or object store, verified, resumable, reversible.

plan -> preflight (each check with its evidence) -> backup -> copy + verify (journaled) ->
compare source and target -> switch MOBIUS_LIBRARY_DIR atomically -> record.

The source is only ever read. Killed at any instant, the same command resumes: the journal
says which entries are complete, temp files left by the killed run are removed, and anything
not journaled (or changed since) is copied again.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from mobius.config import Workspace, is_url, settings_lock
from mobius.errors import InputError, MobiusError, ResourceError, VerificationError
from mobius.log import get_logger
from mobius.media.copier import copy_file
from mobius.media.destination import Destination, open_destination
from mobius.media.faults import FaultHooks
from mobius.media.journal import JournalRow, MigrationJournal, MigrationRecord
from mobius.media.plan import Plan, compare_trees, make_plan, same_target
from mobius.progress import NoProgress, Progress
from mobius.records import records_call
from mobius.safety.checksums import write_checksum_file
from mobius.safety.diskspace import human_bytes, require_free_space
from mobius.safety.envfile import read_env_file, set_env_values
from mobius.safety.hashing import sha256_file
from mobius.safety.lock import FileLock
from mobius.safety.tree import DIR, FILE, LINK, OTHER, points_outside, undecodable, walk

log = get_logger()

SETTING = "MOBIUS_LIBRARY_DIR"
MIN_FREE_RATIO_DURING = 0.10
MAX_FAILED_RATIO = 0.05
COMMIT_EVERY_FILES = 32
COMMIT_EVERY_S = 0.5
PROGRESS_LOG_S = 5.0

Report = Callable[[str], None]


def journal_path(ws: Workspace) -> Path:
    return ws.state / "media.sqlite"


def lock_path(ws: Workspace) -> Path:
    return ws.state / "media.lock"


def migration_lock(ws: Workspace) -> FileLock:
    """Two media migrations (or a migration and a rollback) never run at once in a workspace."""
    return FileLock(lock_path(ws), what="a media migration")


def manifests_dir(ws: Workspace, migration_id: str) -> Path:
    return ws.state / "media" / migration_id


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class MigrationResult:
    record: MigrationRecord | None
    source: str
    target: str
    dry_run: bool = False
    nothing_to_do: bool = False
    resumed: bool = False
    planned_files: int = 0
    planned_bytes: int = 0
    copied_files: int = 0
    copied_bytes: int = 0
    skipped: int = 0
    removed_temps: int = 0
    seconds: float = 0.0
    evidence: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"migration": self.record.to_dict() if self.record else None, "source": self.source,
                "target": self.target, "dry_run": self.dry_run, "nothing_to_do": self.nothing_to_do,
                "resumed": self.resumed, "planned_files": self.planned_files, "planned_bytes": self.planned_bytes,
                "copied_files": self.copied_files, "copied_bytes": self.copied_bytes, "skipped": self.skipped,
                "removed_temps": self.removed_temps, "seconds": self.seconds,
                "evidence": self.evidence}


def _target_id(dest: Destination) -> str:
    return dest.url


def _take_backup(ws: Workspace, progress: Progress) -> tuple[str, str | None]:
    from mobius.backup import create_backup

    backup = create_backup(ws, progress=progress)
    return str(backup.path), backup.sha256


@records_call("media.migrate", ref=lambda result: result.record and result.record.id,
              skip=lambda args: args["dry_run"])
def migrate(ws: Workspace, target: str, *, dry_run: bool = False, backup: bool = True, workers: int | None = None,
            min_free_ratio: float = 3.0, confirm: Callable[[str], bool] | None = None, report: Report | None = None,
            progress: Progress | None = None) -> MigrationResult:
    """Copy the library to `target`, verify every byte there, switch MOBIUS_LIBRARY_DIR; resumable."""
    report = report or (lambda line: None)
    progress = progress or NoProgress()
    started = time.monotonic()
    if min_free_ratio <= 0:
        raise InputError(f"--min-free-ratio must be positive, not {min_free_ratio}")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, not {workers}")
    dest = open_destination(target, ws)
    if is_url(ws.library) and ws.library.rstrip("/") != dest.url:
        raise InputError(f"the library is at {ws.library}; migrating from object storage is not supported",
                         hint="roll back to the local library first (mobius media rollback)")
    source = Path(ws.library) if is_url(ws.library) else Path(os.path.realpath(ws.library))
    if dry_run:
        journal = MigrationJournal.read_only(journal_path(ws))
        try:
            result = _migrate_locked(ws, source, dest, journal, dry_run=True, backup=backup, workers=workers,
                                     min_free_ratio=min_free_ratio, confirm=confirm, report=report,
                                     progress=progress)
        finally:
            if journal:
                journal.close()
    else:
        with migration_lock(ws):
            journal = MigrationJournal(journal_path(ws))
            try:
                result = _migrate_locked(ws, source, dest, journal, dry_run=False, backup=backup, workers=workers,
                                         min_free_ratio=min_free_ratio, confirm=confirm, report=report,
                                         progress=progress)
            finally:
                journal.close()
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _migrate_locked(ws: Workspace, source: Path, dest: Destination, journal: MigrationJournal | None, *,
                    dry_run: bool, backup: bool, workers: int | None, min_free_ratio: float,
                    confirm: Callable[[str], bool] | None, report: Report, progress: Progress) -> MigrationResult:
    target = _target_id(dest)
    result = MigrationResult(None, str(source), target, dry_run=dry_run)

    def evidence(line: str) -> None:
        result.evidence.append(line)
        report(line)

    if is_url(ws.library) or Path(os.path.realpath(target)) == source:
        return _already_migrated(dest, journal, result, evidence)
    if not source.exists():
        raise InputError(f"the library {source} does not exist", hint=f"check {SETTING} in {ws.env_file}")
    if not source.is_dir():
        raise InputError(f"the library {source} is not a folder", hint=f"check {SETTING} in {ws.env_file}")
    if dest.kind == "local":
        real_target = Path(os.path.realpath(target))
        if real_target.exists() and not real_target.is_dir():
            raise InputError(f"the target {target} exists and is not a folder", hint="choose a folder")
        if real_target.is_relative_to(source):
            raise InputError(f"the target {target} is inside the source {source}", hint="choose a folder outside it")
        if source.is_relative_to(real_target):
            raise InputError(f"the source {source} is inside the target {target}", hint="choose another target")

    # preflight
    if not os.access(source, os.R_OK | os.X_OK):
        raise InputError(f"the library {source} is not readable", hint="check its permissions")
    try:
        entries = list(walk(source))
    except OSError as exc:
        raise InputError(f"cannot read the library {source}: {exc.strerror} ({exc.filename})",
                         hint="check its permissions") from None
    files = [e for e in entries if e.kind == FILE]
    links = [e for e in entries if e.kind == LINK]
    dirs = [e for e in entries if e.kind == DIR]
    total_bytes = sum(e.size for e in files)
    evidence(f"preflight: source readable: {source} ({len(files)} files, {human_bytes(total_bytes)}, "
             f"{len(dirs)} folders, {len(links)} symlinks)")
    bad_names = undecodable(entries)
    if bad_names:
        raise InputError(f"{len(bad_names)} names in {source} are not valid UTF-8", details=bad_names,
                         hint="rename them (e.g. with convmv) and run again")
    special = [e.path for e in entries if e.kind == OTHER]
    if special:
        raise InputError(f"{len(special)} entries in {source} are neither files, folders nor symlinks",
                         hint="move sockets, FIFOs and device files out of the library", details=special)
    if links and not dest.supports_links:
        raise InputError(f"{len(links)} symlinks in the library cannot be stored in object storage",
                         hint="replace them by files, or migrate to a local folder",
                         details=[f"{e.path} -> {e.link}" for e in links])
    for link in links:
        if points_outside(source, link):
            evidence(f"preflight: symlink {link.path} -> {link.link} points outside the library: "
                     "copied as a link, never read through")

    record = journal.resumable_migration(str(source), target) if journal else None
    listing = dest.listing()
    if record is None and listing:
        raise InputError(f"the target {target} is not empty and holds no unfinished migration from {source}",
                         hint="choose an empty or new folder as target")
    rows = journal.rows(record.id) if (journal and record) else {}
    plan = make_plan(entries, rows, listing, dest)
    if record:
        result.resumed = True
        evidence(f"preflight: target holds migration {record.id} of this library ({record.status}), resuming: "
                 f"{plan.skipped} of {len(entries)} entries already done")
    else:
        evidence(f"preflight: target {target} is empty" + ("" if dest.exists() else " (will be created)"))
    if dest.kind == "local":
        evidence("preflight: target is not inside the source, and the source is not inside the target")
    needed = int(min_free_ratio * plan.bytes)
    space = dest.space()
    if space is None:
        evidence("preflight: free space: object storage does not report it (not checked)")
    else:
        free = require_free_space(Path(target), needed, what=f"the migration ({min_free_ratio:g} x the data to copy)")
        evidence(f"preflight: free space at target {human_bytes(free)} >= {min_free_ratio:g} x "
                 f"{human_bytes(plan.bytes)} to copy = {human_bytes(needed)}")
    result.planned_files, result.planned_bytes, result.skipped = len(plan.files), plan.bytes, plan.skipped

    if dry_run:
        evidence(f"preflight: target would be created with mode 755 at {target}" if not dest.exists()
                 else f"preflight: target {target} exists")
        evidence(f"plan: copy {len(plan.files)} files ({human_bytes(plan.bytes)}), create {len(plan.dirs)} folders "
                 f"and {len(plan.links)} symlinks, {plan.skipped} already done; then verify every byte at the "
                 f"target, compare manifests, switch {SETTING} to {target}")
        evidence("dry run: nothing was changed")
        return result

    if confirm is not None and not record and not confirm(f"Migrate {source} to {target}?"):
        raise InputError("migration not confirmed; nothing was changed")

    started = time.monotonic()
    if record is None:
        record = MigrationRecord(id=_new_id(), source=str(source), target=target, status="running",
                                 created=now_iso())
    result.record = record
    if not record.backup and not record.backup_skipped:
        if backup:
            report("backup: creating a backup of the library (mobius backup create) ...")
            record.backup, record.backup_sha256 = _take_backup(ws, progress)
            evidence(f"backup: {record.backup} (sha256 {record.backup_sha256})")
            log.info("media.backup.done", migration=record.id, backup=record.backup)
        else:
            record.backup_skipped = True
            evidence("backup: skipped (--no-backup)")
            log.warning("media.backup.skipped", migration=record.id, reason="--no-backup")
    record.status = "running"
    record.runs += 1
    record.updated = now_iso()
    journal.save(record)
    log.info("media.preflight.done", migration=record.id, source=str(source), target=target, files=len(files),
             bytes=total_bytes, resumed=result.resumed)
    try:
        _apply(ws, source, dest, journal, record, plan, result, workers=workers, report=evidence,
               progress=progress, total_files=len(files))
        _compare_and_record(ws, source, dest, journal, record, evidence)
        _switch(ws, journal, record, target, evidence)
    except MobiusError as exc:
        record.status = "stopped" if isinstance(exc, ResourceError) else "failed"
        record.message = exc.message
        record.failures = exc.details[:200]
        raise
    finally:
        record.duration_s = round(record.duration_s + time.monotonic() - started, 3)
        record.updated = now_iso()
        journal.save(record)
    return result


def _new_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def _apply(ws: Workspace, source: Path, dest: Destination, journal: MigrationJournal, record: MigrationRecord,
           plan: Plan, result: MigrationResult, *, workers: int | None, report: Report, progress: Progress,
           total_files: int) -> None:
    """Create folders and links, copy and verify files; journal each finished entry durably."""
    hooks = FaultHooks(ws.state)
    report(f"target: {dest.url}: {dest.prepare()}")
    result.removed_temps = dest.remove_temps()
    if result.removed_temps:
        report(f"target: removed {result.removed_temps} temp files left by a killed run")
        log.info("media.temps.removed", migration=record.id, count=result.removed_temps)
    for path in plan.stale:
        dest.remove(path)
    journal.commit_rows(record.id, [], forget=plan.stale)
    made: list[JournalRow] = []
    for entry in plan.dirs:
        dest.make_dir(entry.path, entry.mode)
        made.append(JournalRow(entry.path, DIR, 0, entry.mtime_ns, entry.inode, entry.mode, None, None, 0, "", None))
    for entry in plan.links:
        stored = dest.make_link(entry.path, entry.link or "")
        made.append(JournalRow(entry.path, LINK, 0, entry.mtime_ns, entry.inode, entry.mode, stored.link, None, 0,
                               "", None))
    if made:
        dest.sync({row.path for row in made})
        journal.commit_rows(record.id, made)
    if not plan.files:
        return
    workers = workers or default_copy_workers()
    log.info("media.copy.started", migration=record.id, files=len(plan.files), bytes=plan.bytes, workers=workers)
    report(f"copy: {len(plan.files)} files, {human_bytes(plan.bytes)}, {workers} workers "
           f"(hash while reading, fsync, re-read from disk, rename)")
    progress.start(f"copy + verify {len(plan.files)} files", plan.bytes, unit="bytes")
    failures: list[str] = []
    pending: list[JournalRow] = []
    stop: MobiusError | None = None
    last_commit = copy_started = last_report = time.monotonic()
    todo = iter(plan.files)
    inflight: set[Future] = set()

    def commit() -> None:
        nonlocal pending, last_commit
        if pending:
            dest.sync({row.path for row in pending})
            hooks.reached("commit")
            journal.commit_rows(record.id, pending)
            pending = []
        last_commit = time.monotonic()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="media-copy") as pool:
        def refill() -> None:
            while stop is None and len(inflight) < workers * 2:
                entry = next(todo, None)
                if entry is None:
                    return
                inflight.add(pool.submit(copy_file, str(source), entry, dest, hooks=hooks,
                                         on_bytes=progress.advance))

        refill()
        while inflight:
            done, _ = wait(inflight, timeout=COMMIT_EVERY_S, return_when=FIRST_COMPLETED)
            for future in done:
                inflight.discard(future)
                outcome = future.result()
                if outcome.error:
                    failures.append(f"{outcome.source.path}: {outcome.error}")
                    log.error("media.copy.failed", migration=record.id, path=outcome.source.path,
                              error=outcome.error)
                    if outcome.no_space and stop is None:
                        stop = ResourceError(f"the target {dest.url} ran out of space; migration stopped, journal "
                                             "intact", hint="free some space and run the same command to resume")
                    continue
                src, stored = outcome.source, outcome.stored
                pending.append(JournalRow(src.path, FILE, src.size, src.mtime_ns, src.inode, src.mode, None,
                                          outcome.digest, stored.size, stored.token, outcome.dst_digest))
                result.copied_files += 1
                result.copied_bytes += src.size
            if len(pending) >= COMMIT_EVERY_FILES or time.monotonic() - last_commit >= COMMIT_EVERY_S:
                commit()
                stop = stop or _space_alert(dest)
            if time.monotonic() - last_report >= PROGRESS_LOG_S:
                last_report = time.monotonic()
                _log_progress(record.id, result, len(plan.files), plan.bytes, last_report - copy_started)
            if stop is None and len(failures) > MAX_FAILED_RATIO * total_files:
                stop = VerificationError(
                    f"{len(failures)} of {total_files} files failed (more than {MAX_FAILED_RATIO:.0%}); "
                    "migration stopped, journal intact, nothing switched",
                    hint="fix the files named above and run the same command again", details=failures)
            refill()
        commit()
    progress.finish()
    log.info("media.copy.done", migration=record.id, copied=result.copied_files, bytes=result.copied_bytes,
             failed=len(failures))
    if stop is not None:
        log.error("media.migration.stopped", migration=record.id, reason=stop.message)
        if not stop.details:
            stop.details = failures
        raise stop
    if failures:
        raise VerificationError(f"{len(failures)} of {total_files} files could not be copied and verified; "
                                "nothing switched", hint="run the same command again to retry them", details=failures)
    report(f"copy: {result.copied_files} files ({human_bytes(result.copied_bytes)}) copied, re-read from the target "
           "and verified")


def default_copy_workers() -> int:
    """Copies wait on fsync and on the re-read from disk, so more threads than cores keep both busy."""
    return max(4, min(16, (os.cpu_count() or 2) * 4))


def _log_progress(migration_id: str, result: MigrationResult, files: int, total: int, elapsed: float) -> None:
    rate = result.copied_bytes / elapsed if elapsed > 0 else 0.0
    eta = (total - result.copied_bytes) / rate if rate else None
    log.info("media.copy.progress", migration=migration_id, files_done=result.copied_files, files=files,
             bytes_done=result.copied_bytes, bytes=total, rate_mb_s=round(rate / 1e6, 1),
             eta_s=round(eta, 1) if eta is not None else None)


def _space_alert(dest: Destination) -> ResourceError | None:
    space = dest.space()
    if space is None or not space[1]:
        return None
    free, total = space
    if free / total < MIN_FREE_RATIO_DURING:
        log.error("media.space.low", target=dest.url, free=free, total=total)
        return ResourceError(
            f"free space at the target fell under {MIN_FREE_RATIO_DURING:.0%} ({human_bytes(free)} of "
            f"{human_bytes(total)}); migration stopped, journal intact",
            hint="free some space and run the same command to resume")
    return None


def _write_manifests(ws: Workspace, journal: MigrationJournal, record: MigrationRecord) -> None:
    folder = manifests_dir(ws, record.id)
    source_manifest, target_manifest = folder / "source.sha256", folder / "target.sha256"
    rows = [r for r in journal.iter_rows(record.id) if r.kind == FILE]
    write_checksum_file(source_manifest, ((r.digest, r.path) for r in rows))
    write_checksum_file(target_manifest, ((r.dst_digest, r.path) for r in rows))
    record.source_manifest, record.target_manifest = str(source_manifest), str(target_manifest)
    record.source_manifest_sha256 = sha256_file(source_manifest)
    record.target_manifest_sha256 = sha256_file(target_manifest)


def _compare_and_record(ws: Workspace, source: Path, dest: Destination, journal: MigrationJournal,
                        record: MigrationRecord, report: Report) -> None:
    """Step 5: counts and full manifests of source and target must match before any switch."""
    rows = journal.rows(record.id)
    problems, counts = compare_trees(source, dest, rows)
    if problems:
        log.error("media.compare.failed", migration=record.id, problems=len(problems))
        raise VerificationError(f"source and target differ in {len(problems)} places; nothing switched",
                                hint="run the same command again to copy what changed", details=problems)
    _write_manifests(ws, journal, record)
    if record.source_manifest_sha256 != record.target_manifest_sha256:
        raise VerificationError("the source and target manifests differ; nothing switched",
                                hint=f"compare {record.source_manifest} and {record.target_manifest}")
    record.files = counts["source_files"]
    record.folders = sum(r.kind == DIR for r in rows.values())
    record.links = sum(r.kind == LINK for r in rows.values())
    record.bytes = sum(r.size for r in rows.values() if r.kind == FILE)
    record.status = "verified"
    record.updated = now_iso()
    journal.save(record)
    report(f"compare: {counts['source_files']} files at the source, {counts['target_files']} at the target; "
           f"manifests identical (sha256 {record.source_manifest_sha256[:16]}...)")
    log.info("media.compare.done", migration=record.id, files=record.files,
             manifest_sha256=record.source_manifest_sha256)


def _switch(ws: Workspace, journal: MigrationJournal, record: MigrationRecord, target: str, report: Report) -> None:
    """Step 6: MOBIUS_LIBRARY_DIR -> target in the workspace .env (atomic); old value kept in the record."""
    hooks = FaultHooks(ws.state)
    with settings_lock(ws.env_file):  # no other writer may change .env between the read and the write
        current = read_env_file(ws.env_file).get(SETTING)
        if current != target:
            record.previous_value = current
        record.new_value = target
        record.status = "switching"
        journal.save(record)
        hooks.reached("switch")
        set_env_values(ws.env_file, {SETTING: target})
    hooks.reached("switched")
    _completed(journal, record)
    report(f"switch: {SETTING}={target} in {ws.env_file} (was {record.previous_value or 'unset: default uploads'})")
    if os.environ.get(SETTING):
        report(f"warning: {SETTING} is also set in the environment, which overrides {ws.env_file}")
    log.info("media.switch.done", migration=record.id, setting=SETTING, value=target, previous=record.previous_value)


def _completed(journal: MigrationJournal, record: MigrationRecord) -> None:
    record.status = "completed"
    record.finished = now_iso()
    record.updated = now_iso()
    journal.save(record)


def _already_migrated(dest: Destination, journal: MigrationJournal | None, result: MigrationResult,
                      report: Report) -> MigrationResult:
    """The library already is the target: check, without reading contents, that nothing changed."""
    record = journal.last_into(dest.url, ("completed", "switching", "finalized")) if journal else None
    if record is None:
        raise InputError(f"the target {dest.url} is the library itself", hint="choose another target")
    result.record, result.source = record, record.source
    started = time.monotonic()
    rows = journal.rows(record.id)
    if record.status == "finalized":
        listing = dest.listing()
        problems = [f"changed or missing at the target: {p}" for p, r in rows.items()
                    if not same_target(r, listing.get(p), dest)]
    else:
        problems, _ = compare_trees(Path(record.source), dest, rows)
    if problems:
        raise VerificationError(
            f"the library already is {dest.url} (migration {record.id}), but {len(problems)} entries changed since",
            hint="the library is in use at the target; to migrate again, pick a new target", details=problems)
    if record.status == "switching" and not result.dry_run:
        _completed(journal, record)
        report(f"finished the switch of migration {record.id}")
    result.nothing_to_do = True
    result.skipped = len(rows)
    report(f"nothing to do: migration {record.id} already moved {record.files} files to {dest.url}; source and "
           f"target unchanged (size, mtime, inode of {len(rows)} entries checked in "
           f"{time.monotonic() - started:.2f} s, no file read)")
    return result


def list_migrations(ws: Workspace) -> list[MigrationRecord]:
    """Every migration record of the workspace, oldest first."""
    journal = MigrationJournal.read_only(journal_path(ws))
    if journal is None:
        return []
    try:
        return journal.records()
    finally:
        journal.close()


def as_lines(records: Iterable[MigrationRecord]) -> list[str]:
    lines = []
    for r in records:
        backup = r.backup or ("none (--no-backup)" if r.backup_skipped else "-")
        lines.append(f"{r.id}  {r.status:<11} {r.files} files {human_bytes(r.bytes)} in {r.duration_s:.1f} s  "
                     f"{r.source} -> {r.target}  backup: {backup}")
    return lines
