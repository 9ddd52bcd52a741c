"""`migrate`: move the library to a new folder or object store, verified, resumable, reversible.

plan -> preflight (each check with its evidence) -> backup -> copy + verify (journaled) ->
compare source and target -> switch MOBIUS_LIBRARY_DIR atomically -> record.

The source is only ever read. Killed at any instant, the same command resumes: the journal
says which entries are complete, temp files left by the killed run are removed, and anything
not journaled (or changed since) is copied again.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mobius.config import Workspace, is_url, settings_lock, validate_setting_value
from mobius.errors import InputError, MobiusError, ResourceError, VerificationError, describe
from mobius.faults import FaultHooks, kill_at
from mobius.log import get_logger
from mobius.media.destination import Destination, open_destination
from mobius.media.journal import MigrationJournal, MigrationRecord
from mobius.media.local_destination import LocalDestination
from mobius.media.plan import (
    LIVE_STATUSES,
    WALK_AHEAD_THREADS,
    Plan,
    compare_trees,
    first_run_plan,
    local_root,
    make_plan,
    target_problems,
    unchanged_since_verified,
)
from mobius.media.recheck import recheck_ctimes, reread_all
from mobius.media.treeprint import start_fingerprint
from mobius.progress import NoProgress, Progress
from mobius.records import outer_operation, records_call
from mobius.safety.checksums import write_checksum_file
from mobius.safety.diskspace import human_bytes, require_free_space
from mobius.safety.envfile import read_env_file, set_env_values
from mobius.safety.hashing import sha256_file
from mobius.safety.lock import FileLock
from mobius.safety.tree import DIR, FILE, LINK, Entry, points_outside, undecodable, walk
from mobius.stamps import new_id, utc_iso

if TYPE_CHECKING:  # the copy's modules are loaded when a copy starts: a re-run with nothing to do skips them
    from mobius.media.copier import Copied, CopyOutcome
    from mobius.media.copy_processes import CopyProcesses

log = get_logger()

SETTING = "MOBIUS_LIBRARY_DIR"
MIN_FREE_RATIO_DURING = 0.10
MAX_FAILED_RATIO = 0.05
PROGRESS_LOG_S = 5.0
LARGE_FILE = 1 << 20  # from this size a file is copied on its own (fsync + re-read overlap other files)
COPY_PROCESSES = 4  # worker processes for many small files (copy_processes.py), at most --workers
# batches started before the oldest is journaled: with 2, the copy workers were busy 93-95% of the copy instead of
# 88-93% with 1 (each waited on this process's commit between batches); 100,000 files, 4 workers
BATCHES_AHEAD = 2
PROCESSES_FROM = 256  # files; below, the forks cost more than the threads' hand-offs
OBJECT_STORE_IN_FLIGHT = 32  # uploads in flight to object storage by default (latency-bound, not CPU); --workers

Say = Callable[[str], None]  # where progress lines for a person go (not a results.Report)


def journal_path(ws: Workspace) -> Path:
    return ws.state / "media.sqlite"


def lock_path(ws: Workspace) -> Path:
    return ws.state / "media.lock"


def migration_lock(ws: Workspace) -> FileLock:
    """Two media migrations (or a migration and a rollback) never run at once in a workspace."""
    return FileLock(lock_path(ws), what="a media migration")


def manifests_dir(ws: Workspace, migration_id: str) -> Path:
    return ws.state / "media" / migration_id


now_iso = utc_iso  # the one stamp format (mobius.stamps); journals keep reading the older second-precision form


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


@dataclass
class SourceScan:
    """The preflight's one pass over the source: counts, and what would stop the migration."""

    files: int = 0
    bytes: int = 0
    dirs: int = 0
    entries: int = 0
    links: list[Entry] = field(default_factory=list)
    special: list[str] = field(default_factory=list)
    kept: list[Entry] | None = None  # every entry, only when resuming (the plan compares each with the journal)


@dataclass
class MigrationRun:
    """What one `migrate` carries from step to step, instead of a dozen parameters per function."""

    ws: Workspace
    source: Path
    dest: Destination
    journal: MigrationJournal | None
    result: MigrationResult
    report: Say
    progress: Progress
    workers: int | None
    dry_run: bool
    backup: bool
    min_free_ratio: float
    confirm: Callable[[str], bool] | None
    record: MigrationRecord | None = None
    scan: SourceScan = field(default_factory=SourceScan)
    plan: Plan | None = None
    failures: list[str] = field(default_factory=list)
    stop: MobiusError | None = None
    hooks: FaultHooks | None = None
    verify: bool = False  # a re-run of a completed migration re-reads every byte instead of trusting stats

    @property
    def target(self) -> str:
        return _target_id(self.dest)

    def evidence(self, line: str) -> None:
        self.result.evidence.append(line)
        self.report(line)


@records_call("media.migrate", ref=lambda result: result.record and result.record.id,
              skip=lambda args: args["dry_run"])
def migrate(ws: Workspace, target: str, *, dry_run: bool = False, backup: bool = True, workers: int | None = None,
            min_free_ratio: float = 3.0, confirm: Callable[[str], bool] | None = None, report: Say | None = None,
            progress: Progress | None = None, verify: bool = False) -> MigrationResult:
    """Copy the library to `target`, verify every byte there, switch MOBIUS_LIBRARY_DIR; resumable.

    Run again after it completed, it compares both trees with what it verified (stat, ctime
    included; only files whose ctime alone moved are read), or with `verify` re-reads every byte.
    """
    started = time.monotonic()
    if min_free_ratio <= 0:
        raise InputError(f"--min-free-ratio must be positive, not {min_free_ratio}")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, not {workers}")
    validate_setting_value(SETTING, target)  # it ends up in .env: refused before anything is copied
    dest = open_destination(target, ws)
    if is_url(ws.library) and ws.library.rstrip("/") != dest.url:
        raise InputError(f"the library is at {ws.library}; migrating from object storage is not supported",
                         hint="roll back to the local library first (mobius media rollback)")
    source = Path(ws.library) if is_url(ws.library) else Path(os.path.realpath(ws.library))
    result = MigrationResult(None, str(source), _target_id(dest), dry_run=dry_run)

    def run_with(journal: MigrationJournal | None) -> None:
        run = MigrationRun(ws, source, dest, journal, result, report or (lambda line: None), progress or NoProgress(),
                           workers, dry_run, backup, min_free_ratio, confirm, verify=verify)
        try:
            _migrate_locked(run)
        finally:
            if journal:
                journal.close()

    if dry_run:
        run_with(MigrationJournal.read_only(journal_path(ws)))
    else:
        with migration_lock(ws):
            run_with(MigrationJournal(journal_path(ws)))
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _migrate_locked(run: MigrationRun) -> None:
    """preflight -> plan -> (dry run stops here) -> record + backup -> copy -> compare -> switch."""
    if is_url(run.ws.library) or Path(os.path.realpath(run.target)) == run.source:
        _already_migrated(run)
        return
    _check_locations(run)
    run.record = run.journal.resumable_migration(str(run.source), run.target) if run.journal else None
    if run.record is not None and run.record.status == "completed" and _completed_and_unchanged(run):
        return
    _scan_source(run)
    _check_source(run)
    _make_the_plan(run)
    _check_space(run)
    if run.dry_run:
        _describe_dry_run(run)
        return
    if run.confirm is not None and not run.record and not run.confirm(f"Migrate {run.source} to {run.target}?"):
        raise InputError("migration not confirmed; nothing was changed")
    started = time.monotonic()
    record = _start_record(run)
    try:
        _apply(run)
        kill_at("media:compare")
        _compare_and_record(run.ws, run.source, run.dest, run.journal, record, run.evidence)
        _switch(run.ws, run.journal, record, run.target, run.evidence)
    except MobiusError as exc:
        record.status = "stopped" if isinstance(exc, ResourceError) else "failed"
        record.message = exc.message
        record.failures = exc.details[:200]
        raise
    except Exception as exc:  # not one of ours (a bug): failed and why, as for ours; `switching` keeps its
        if record.status == "running":  # recovery (Ctrl-C and kills leave the record `running`: resumed)
            record.status = "failed"
        record.message = describe(exc)
        raise
    finally:
        record.duration_s = round(record.duration_s + time.monotonic() - started, 3)
        record.updated = now_iso()
        run.journal.save(record)


def _check_locations(run: MigrationRun) -> None:
    source, target = run.source, run.target
    if not source.exists():
        raise InputError(f"the library {source} does not exist", hint=f"check {SETTING} in {run.ws.env_file}")
    if not source.is_dir():
        raise InputError(f"the library {source} is not a folder", hint=f"check {SETTING} in {run.ws.env_file}")
    if run.dest.kind == "local":
        real_target = Path(os.path.realpath(target))
        if real_target.exists() and not real_target.is_dir():
            raise InputError(f"the target {target} exists and is not a folder", hint="choose a folder")
        if real_target.is_relative_to(source):
            raise InputError(f"the target {target} is inside the source {source}", hint="choose a folder outside it")
        if source.is_relative_to(real_target):
            raise InputError(f"the source {source} is inside the target {target}", hint="choose another target")
    if not os.access(source, os.R_OK | os.X_OK):
        raise InputError(f"the library {source} is not readable", hint="check its permissions")


def _scan_source(run: MigrationRun) -> None:
    """One streamed pass: counts and problems; every entry is kept only when resuming."""
    scan = run.scan = SourceScan()
    bad: list[Entry] = []
    if run.record is not None or not _scan_with_find(run.source, scan, bad):  # a first run keeps no entry
        scan = run.scan = SourceScan(kept=[] if run.record else None)
        bad = []
        _scan_with_walk(run.source, scan, bad)
    run.evidence(f"preflight: source readable: {run.source} ({scan.files} files, {human_bytes(scan.bytes)}, "
                 f"{scan.dirs} folders, {len(scan.links)} symlinks)")
    bad_names = undecodable(bad)
    if bad_names:
        raise InputError(f"{len(bad_names)} names in {run.source} are not valid UTF-8", details=bad_names,
                         hint="rename them (e.g. with convmv) and run again")


def _scan_with_find(source: Path, scan: SourceScan, bad: list[Entry]) -> bool:
    """The first run's pass as one `find` process (treeprint.py) whose output is only split here: the walk in
    Python cost this process 1.3-1.6 s of CPU per 100,000 entries (a stat result and an Entry per name), while
    the copy's workers wait for it. False (the caller walks in Python, which names what it cannot read) when
    there is no GNU find or it failed."""
    kinds = {"f": FILE, "d": DIR, "l": LINK}

    def count(records: list[tuple[str, str]]) -> None:
        for fields, link in records:
            kind, _, size, _, _, _, path = fields.split(" ", 6)
            kind = kinds.get(kind, kind)
            scan.entries += 1
            if kind == FILE:
                scan.files += 1
                scan.bytes += int(size)
            elif kind == DIR:
                scan.dirs += 1
            elif kind == LINK:
                scan.links.append(Entry(path, LINK, link=link))
            else:
                scan.special.append(path)
            if not path.isascii():
                bad.append(Entry(path, kind))

    if start_fingerprint(str(source), count)() is None:
        return False
    scan.links.sort(key=lambda entry: entry.path)  # the walk's order is find's (on disk): named sorted
    scan.special.sort()
    bad.sort(key=lambda entry: entry.path)
    return True


def _scan_with_walk(source: Path, scan: SourceScan, bad: list[Entry]) -> None:
    try:
        for entry in walk(source, threads=WALK_AHEAD_THREADS):  # a cold cache's inode reads overlap
            scan.entries += 1
            if scan.kept is not None:
                scan.kept.append(entry)
            if entry.kind == FILE:
                scan.files += 1
                scan.bytes += entry.size
            elif entry.kind == DIR:
                scan.dirs += 1
            elif entry.kind == LINK:
                scan.links.append(entry)
            else:
                scan.special.append(entry.path)
            if not entry.path.isascii():
                bad.append(entry)
    except OSError as exc:
        raise InputError(f"cannot read the library {source}: {exc.strerror} ({exc.filename})",
                         hint="check its permissions") from None


def _check_source(run: MigrationRun) -> None:
    scan, source = run.scan, run.source
    if scan.special:
        raise InputError(f"{len(scan.special)} entries in {source} are neither files, folders nor symlinks",
                         hint="move sockets, FIFOs and device files out of the library", details=scan.special)
    if scan.links and not run.dest.supports_links:
        raise InputError(f"{len(scan.links)} symlinks in the library cannot be stored in object storage",
                         hint="replace them by files, or migrate to a local folder",
                         details=[f"{e.path} -> {e.link}" for e in scan.links])
    for link in scan.links:
        if points_outside(source, link):
            run.evidence(f"preflight: symlink {link.path} -> {link.link} points outside the library: "
                         "copied as a link, never read through")


def _make_the_plan(run: MigrationRun) -> None:
    """First run: everything, streamed. Resume: what the journal lacks; refuse target edits (conflicts)."""
    record, target = run.record, run.target
    if record is None:
        if run.dest.exists() and run.dest.listing():
            raise InputError(f"the target {target} is not empty and holds no unfinished migration from "
                             f"{run.source}", hint="choose an empty or new folder as target")
        run.plan = first_run_plan(run.source, run.scan.files, run.scan.bytes)
        run.evidence(f"preflight: target {target} is empty" + ("" if run.dest.exists() else " (will be created)"))
    else:
        live = record.status in LIVE_STATUSES
        # a live target's files whose ctime alone moved are hashed: source edits are copied, target edits kept
        recheck = recheck_ctimes(run.source, local_root(run.dest), run.dest, run.journal, record.id,
                                 update=not run.dry_run) if live else None
        run.plan = make_plan(run.scan.kept or [], run.journal.rows(record.id), run.dest.listing(), run.dest,
                             target_was_live=live)
        run.scan.kept = None
        if recheck is not None:
            run.plan.conflicts += recheck.target_changed
        if run.plan.conflicts:
            log.error("media.target.conflicts", migration=record.id, count=len(run.plan.conflicts))
            raise VerificationError(
                f"{len(run.plan.conflicts)} entries at the target {target} changed since migration {record.id} "
                "wrote them (the target was the library in use); nothing was copied or overwritten",
                hint=f"keep those edits: copy them into the library {run.source} (or move them out of {target}) "
                     "and run again, or migrate to a new, empty target", details=run.plan.conflicts)
        run.result.resumed = True
        run.evidence(f"preflight: target holds migration {record.id} of this library ({record.status}), resuming: "
                     f"{run.plan.skipped} of {run.scan.entries} entries already done")
    if run.dest.kind == "local":
        run.evidence("preflight: target is not inside the source, and the source is not inside the target")
    run.result.planned_files, run.result.planned_bytes = run.plan.files, run.plan.bytes
    run.result.skipped = run.plan.skipped


def _check_space(run: MigrationRun) -> None:
    ratio, planned = run.min_free_ratio, run.plan.bytes
    needed = int(ratio * planned)
    if run.dest.space() is None:
        run.evidence("preflight: free space: object storage does not report it (not checked)")
        return
    free = require_free_space(Path(run.target), needed, what=f"the migration ({ratio:g} x the data to copy)")
    run.evidence(f"preflight: free space at target {human_bytes(free)} >= {ratio:g} x "
                 f"{human_bytes(planned)} to copy = {human_bytes(needed)}")


def _describe_dry_run(run: MigrationRun) -> None:
    plan, target = run.plan, run.target
    run.evidence(f"preflight: target would be created with mode 755 at {target}" if not run.dest.exists()
                 else f"preflight: target {target} exists")
    run.evidence(f"plan: copy {plan.files} files ({human_bytes(plan.bytes)}), create the folders and symlinks, "
                 f"{plan.skipped} entries already done; then verify every byte at the target, compare manifests, "
                 f"switch {SETTING} to {target}")
    run.evidence("dry run: nothing was changed")


def _start_record(run: MigrationRun) -> MigrationRecord:
    """A new (or the resumed) record, the backup taken once, saved as running."""
    record = run.record or MigrationRecord(id=_new_id(), source=str(run.source), target=run.target,
                                           status="running", created=now_iso())
    run.record = run.result.record = record
    if not record.backup and not record.backup_skipped:
        if run.backup:
            run.report("backup: creating a backup of the library (mobius backup create) ...")
            record.backup, record.backup_sha256 = _take_backup(run.ws, run.progress)
            run.evidence(f"backup: {record.backup} (sha256 {record.backup_sha256})")
            log.info("media.backup.done", migration=record.id, backup=record.backup)
        else:
            record.backup_skipped = True
            inside = outer_operation()
            run.evidence("backup: skipped (the enclosing plan's backup step is the restore point)" if inside
                         else "backup: skipped (--no-backup)")
            (log.info if inside else log.warning)("media.backup.skipped", migration=record.id,
                                                  reason="plan backup step" if inside else "--no-backup")
    record.status = "running"
    record.runs += 1
    record.updated = now_iso()
    run.journal.save(record)
    log.info("media.preflight.done", migration=record.id, source=str(run.source), target=run.target,
             files=run.scan.files, bytes=run.scan.bytes, resumed=run.result.resumed)
    return record


def _new_id() -> str:
    return new_id()  # the one id maker (mobius.stamps)


def _apply(run: MigrationRun) -> None:
    """Prepare the target, then copy and verify in batches, each journaled durably in one transaction."""
    from mobius.media.batch import BATCH_FILES

    run.hooks = FaultHooks(run.ws.state)
    _prepare_target(run)
    workers = run.workers or (default_copy_workers() if run.dest.kind == "local" else OBJECT_STORE_IN_FLIGHT)
    plan, record = run.plan, run.record
    log.info("media.copy.started", migration=record.id, files=plan.files, bytes=plan.bytes, workers=workers)
    run.report(f"copy: {plan.files} files, {human_bytes(plan.bytes)}, {workers} workers, in batches of up to "
               f"{BATCH_FILES} (hash while reading, sync, re-read from disk, rename, journal)")
    with contextlib.ExitStack() as stack:
        processes = _copy_processes(run, workers)  # forked first: this process has no other thread yet
        if processes is not None:
            stack.enter_context(processes)
        run.progress.start(f"copy + verify {plan.files} files", plan.bytes, unit="bytes")
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="media-copy"))
        _copy_batches(run, _batch_copier(run, pool, workers, processes))
    run.progress.finish()
    _raise_failures(run)


def _prepare_target(run: MigrationRun) -> None:
    """Create the target, remove a killed run's temp files, drop stale entries, forget rows to redo."""
    dest, record, plan = run.dest, run.record, run.plan
    run.report(f"target: {dest.url}: {dest.prepare()}")
    run.result.removed_temps = dest.remove_temps()
    if run.result.removed_temps:
        run.report(f"target: removed {run.result.removed_temps} temp files left by a killed run")
        log.info("media.temps.removed", migration=record.id, count=run.result.removed_temps)
    for path in plan.stale:
        dest.remove(path)
    run.journal.commit_rows(record.id, [], forget=[*plan.stale, *plan.forget])


def _copy_processes(run: MigrationRun, workers: int) -> CopyProcesses | None:
    """Worker processes for the small files' write and re-read steps, where there are enough of them to pay
    for the forks (see copy_processes.py); None: the copy threads do all of it."""
    from mobius.media.batch import LocalBatchCopier
    from mobius.media.copy_processes import CopyProcesses
    from mobius.safety.workers import can_fork_workers

    # not from another thread (can_fork_workers): one runs beside it then (promote's database copy), and a worker
    # dies with the thread that forked it (PR_SET_PDEATHSIG), which must be the one that lives as long as the process
    if (not isinstance(run.dest, LocalDestination) or workers < 2 or run.plan.files < PROCESSES_FROM
            or not can_fork_workers()):
        return None
    run.dest.in_place = run.record.new_value is None
    # the copier each worker runs: the steps of one slice, on one thread, progress reported by the parent
    copier = LocalBatchCopier(str(run.source), str(run.dest.root), hooks=run.hooks, pool=None, workers=1,
                              in_place=run.dest.in_place)
    return CopyProcesses(copier, min(workers, COPY_PROCESSES))


def _batch_copier(run: MigrationRun, pool: ThreadPoolExecutor, workers: int,
                  processes: CopyProcesses | None) -> Callable[[list[Entry]], Callable[[], Copied]]:
    """Local folders: the batched copier (one sync per batch). Object storage: `workers` uploads in flight."""
    from mobius.media.batch import LocalBatchCopier
    from mobius.media.copier import copy_file, split_outcomes

    hooks = run.hooks

    def one(entry: Entry) -> CopyOutcome:
        return copy_file(str(run.source), entry, run.dest, hooks=hooks, on_bytes=run.progress.advance)

    if not isinstance(run.dest, LocalDestination):
        return lambda files: (lambda done=split_outcomes(pool.map(one, files)): done)
    # never the live library (never switched to): written under the final names, the journal says what is done
    run.dest.in_place = run.record.new_value is None
    batch = LocalBatchCopier(str(run.source), str(run.dest.root), hooks=hooks, pool=pool, workers=workers,
                             on_bytes=run.progress.advance, in_place=run.dest.in_place)
    batch.processes = processes

    def local(files: list[Entry]) -> Callable[[], Copied]:
        # large files each overlap their own write, fsync and re-read on the pool; small ones share one sync
        large = [e for e in files if e.size >= LARGE_FILE]
        small = [e for e in files if e.size < LARGE_FILE] if large else files
        # the large files first, then the small ones handed over, as before batches overlapped (a test's pause
        # point takes a lock the workers share: a worker killed holding it would stop a thread copying beside it)
        large_done = split_outcomes(pool.map(one, large))
        small_done = batch.start(small) if small else None

        def done() -> Copied:
            if small_done is None:
                return large_done
            rows, failed = small_done()
            return large_done[0] + rows, large_done[1] + failed

        return done

    return local


Pending = tuple[list[tuple], Callable[[], "Copied"] | None]  # a started batch: its folders' and links' rows, its files


def _copy_batches(run: MigrationRun, copy: Callable[[list[Entry]], Callable[[], Copied]]) -> None:
    """Each batch is started (folders, links, files handed to the copy), then the one before it finished
    (outcomes, folder sync, commit): on worker processes the next batch's files are written while this
    process journals the last one. A stop still lets the batch in flight finish and be journaled."""
    from mobius.media.batch import batches

    plan, record = run.plan, run.record
    started = last_report = time.monotonic()
    pending: deque[Pending] = deque()
    for batch in batches(plan.todo):
        pending.append(_start_batch(run, batch, copy))
        if len(pending) > BATCHES_AHEAD:
            _finish_batch(run, pending.popleft())
        if time.monotonic() - last_report >= PROGRESS_LOG_S:
            last_report = time.monotonic()
            _log_progress(record.id, run.result, plan.files, plan.bytes, last_report - started)
        if run.stop is not None:
            break
    while pending:
        _finish_batch(run, pending.popleft())


def _start_batch(run: MigrationRun, batch: list[Entry], copy: Callable[[list[Entry]], Callable[[], Copied]]) -> Pending:
    """Folders and links first (in walk order), then the batch's files handed to the copy."""
    rows: list[tuple] = []  # journal rows as plain tuples (journal.COLUMNS order)
    files: list[Entry] = []
    for entry in batch:
        if entry.kind == DIR:
            run.dest.make_dir(entry.path, entry.mode)
            rows.append((entry.path, DIR, 0, entry.mtime_ns, entry.inode, entry.mode, None, None, 0, "", None, None,
                         None))
        elif entry.kind == LINK:
            stored = run.dest.make_link(entry.path, entry.link or "")
            rows.append((entry.path, LINK, 0, entry.mtime_ns, entry.inode, entry.mode, stored.link, None, 0, "", None,
                         None, None))
        elif entry.kind == FILE:
            files.append(entry)
        else:
            run.failures.append(f"{entry.path}: neither a file, a folder nor a symlink (appeared during the copy)")
    return rows, copy(files) if files else None


def _finish_batch(run: MigrationRun, pending: Pending) -> None:
    """The batch's outcomes, then one sync of its folders and one journal commit of its rows."""
    rows, outcomes = pending
    if outcomes is not None:
        copied, failed = outcomes()
        for outcome in failed:
            _take_failure(run, outcome)
        run.result.copied_files += len(copied)
        run.result.copied_bytes += sum(row[2] for row in copied)
        rows += copied
    if rows:
        run.dest.sync({row[0] for row in rows})
        run.hooks.reached("commit")
        run.journal.commit_rows(run.record.id, (), raw=rows)
    run.stop = run.stop or _space_alert(run.dest)
    total = run.scan.files
    if run.stop is None and len(run.failures) > MAX_FAILED_RATIO * total:
        run.stop = VerificationError(
            f"{len(run.failures)} of {total} files failed (more than {MAX_FAILED_RATIO:.0%}); "
            "migration stopped, journal intact, nothing switched",
            hint="fix the files named above and run the same command again", details=run.failures)


def _take_failure(run: MigrationRun, outcome: CopyOutcome) -> None:
    run.failures.append(f"{outcome.source.path}: {outcome.error}")
    log.error("media.copy.failed", migration=run.record.id, path=outcome.source.path, error=outcome.error)
    if outcome.no_space and run.stop is None:
        run.stop = ResourceError(f"the target {run.dest.url} ran out of space; migration stopped, journal "
                                 "intact", hint="free some space and run the same command to resume")


def _raise_failures(run: MigrationRun) -> None:
    result, failures, stop, total = run.result, run.failures, run.stop, run.scan.files
    log.info("media.copy.done", migration=run.record.id, copied=result.copied_files, bytes=result.copied_bytes,
             failed=len(failures))
    if stop is not None:
        log.error("media.migration.stopped", migration=run.record.id, reason=stop.message)
        if not stop.details:
            stop.details = failures
        raise stop
    if failures:
        raise VerificationError(f"{len(failures)} of {total} files could not be copied and verified; "
                                "nothing switched", hint="run the same command again to retry them", details=failures)
    run.report(f"copy: {result.copied_files} files ({human_bytes(result.copied_bytes)}) copied, re-read from the "
               "target and verified")


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
    # two streamed passes over the journal (sorted by path): nothing held per file
    write_checksum_file(source_manifest, journal.iter_digests(record.id))
    write_checksum_file(target_manifest, journal.iter_digests(record.id, target=True))
    record.source_manifest, record.target_manifest = str(source_manifest), str(target_manifest)
    record.source_manifest_sha256 = sha256_file(source_manifest)
    record.target_manifest_sha256 = sha256_file(target_manifest)


def _compare_and_record(ws: Workspace, source: Path, dest: Destination, journal: MigrationJournal,
                        record: MigrationRecord, report: Say) -> None:
    """Step 5: counts and full manifests of source and target must match before any switch."""
    problems, counts = compare_trees(source, dest, journal, record.id)
    if problems:
        log.error("media.compare.failed", migration=record.id, problems=len(problems))
        raise VerificationError(f"source and target differ in {len(problems)} places; nothing switched",
                                hint="run the same command again to copy what changed", details=problems)
    _write_manifests(ws, journal, record)
    if record.source_manifest_sha256 != record.target_manifest_sha256:
        raise VerificationError("the source and target manifests differ; nothing switched",
                                hint=f"compare {record.source_manifest} and {record.target_manifest}")
    record.files, record.folders, record.links, record.bytes = counts.files, counts.folders, counts.links, counts.bytes
    record.source_fingerprint, record.target_fingerprint = counts.source_fingerprint, counts.target_fingerprint
    record.status = "verified"
    record.updated = now_iso()
    journal.save(record)
    report(f"compare: {counts.source_files} files at the source, {counts.target_files} at the target; "
           f"manifests identical (sha256 {record.source_manifest_sha256[:16]}...)")
    log.info("media.compare.done", migration=record.id, files=record.files,
             manifest_sha256=record.source_manifest_sha256)


def _switch(ws: Workspace, journal: MigrationJournal, record: MigrationRecord, target: str, report: Say) -> None:
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


def _completed_and_unchanged(run: MigrationRun) -> bool:
    """A re-run of a completed migration (the source kept as the library, e.g. by the environment): when
    both trees still have the fingerprints they were verified with (or, with --verify, every byte
    re-read still matches) and the setting already names the target, there is nothing to do."""
    record, dest = run.record, run.dest
    if read_env_file(run.ws.env_file).get(SETTING) != run.target:
        return False  # the setting was changed by hand: the full path checks and switches again
    started = time.monotonic()
    entries = record.files + record.folders + record.links
    if run.verify:
        read = _reread_or_raise(run.ws, Path(record.source), dest, run.journal, record)
        how = f"every byte of {read} files read again on both sides"
    elif unchanged_since_verified(Path(record.source), dest, record.source_fingerprint, record.target_fingerprint):
        how = f"size, mtime, inode and ctime of {entries} entries checked, no file read"
    else:
        return False  # the plan says what changed (files whose ctime alone moved are hashed first)
    run.result.record, run.result.nothing_to_do, run.result.skipped = record, True, entries
    run.evidence(f"nothing to do: migration {record.id} already moved {record.files} files to {dest.url}; source "
                 f"and target unchanged ({how} in {time.monotonic() - started:.2f} s)")
    return True


def _reread_or_raise(ws: Workspace, source: Path, dest: Destination, journal: MigrationJournal,
                     record: MigrationRecord) -> int:
    read, problems = reread_all(source, local_root(dest), dest, journal, record.id, ws=ws)
    if problems:
        log.error("media.verify.failed", migration=record.id, problems=len(problems))
        raise VerificationError(f"--verify: {len(problems)} differences between the trees and what migration "
                                f"{record.id} verified", details=problems,
                                hint="run without --verify to copy source changes again; edits at the target "
                                     "are never overwritten")
    return read


def _already_migrated(run: MigrationRun) -> MigrationResult:
    """The library already is the target: check, without reading contents, that nothing changed."""
    dest, journal, result, report = run.dest, run.journal, run.result, run.evidence
    record = journal.last_into(dest.url, ("completed", "switching", "finalized")) if journal else None
    if record is None:
        raise InputError(f"the target {dest.url} is the library itself", hint="choose another target")
    result.record, result.source = record, record.source
    started = time.monotonic()
    how = "size, mtime, inode and ctime of {} entries checked, no file read"
    if record.status == "finalized":
        problems = target_problems(dest, journal, record.id)
        entries = journal.count_rows(record.id)
    elif run.verify:
        entries = record.files + record.folders + record.links
        how = f"every byte of {_reread_or_raise(run.ws, Path(record.source), dest, journal, record)} files read again"
        problems = []
    elif unchanged_since_verified(Path(record.source), dest, record.source_fingerprint, record.target_fingerprint):
        problems, entries = [], record.files + record.folders + record.links  # both walks match the verified trees
    else:
        problems, counts = compare_trees(Path(record.source), dest, journal, record.id, update=not result.dry_run)
        entries = counts.folders + counts.links + counts.files
        if not problems and not result.dry_run and (counts.source_fingerprint, counts.target_fingerprint) != (
                record.source_fingerprint, record.target_fingerprint):
            record.source_fingerprint, record.target_fingerprint = counts.source_fingerprint, counts.target_fingerprint
            journal.save(record)  # a record from before fingerprints, or touched-but-equal trees: next time cheap
    if problems:
        raise VerificationError(
            f"the library already is {dest.url} (migration {record.id}), but {len(problems)} entries changed since",
            hint="the library is in use at the target; to migrate again, pick a new target", details=problems)
    if record.status == "switching" and not result.dry_run:
        _completed(journal, record)
        report(f"finished the switch of migration {record.id}")
    result.nothing_to_do = True
    result.skipped = entries
    report(f"nothing to do: migration {record.id} already moved {record.files} files to {dest.url}; source and "
           f"target unchanged ({how.format(entries)} in {time.monotonic() - started:.2f} s)")
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
