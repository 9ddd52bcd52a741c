"""`env promote --from A --to B`: the runbook's staging-to-production migration as one verified operation.

plan (config diff, schema versions, copy direction, library files/bytes to copy, settings that
follow) -> verified backup of B -> database copy (db sync) -> library sync (media migration
machinery: journaled, re-read, only changed files) -> settings that follow -> validate B.
Any failure after the backup (any exception, or Ctrl-C, which then exits 130) restores B from it and proves
the restore against a snapshot: the runner (ops.orchestrator) undoes the step with its recorded handle.

When either library is in object storage (s3://), the library sync goes through the target's backup
repository instead of the media migration: a snapshot of A's library (only what changed is read and
stored), restored into B (a folder: swapped in; s3://: changed objects written, extra ones deleted,
the listing checked; backup.object_restore).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mobius.config import ENV_PREFIX, Settings, Workspace, change_settings, environment_file, is_url, mask_text
from mobius.envs import restore_point, state
from mobius.envs.database_proof import databases_identical, forget_proof
from mobius.envs.diff import diff_environments
from mobius.envs.environments import load_environment
from mobius.envs.places import check_promote_places
from mobius.envs.restore_point import RestorePoint
from mobius.envs.validate import validate_environment
from mobius.errors import InputError, MobiusError, VerificationError
from mobius.phases import DESCRIBED, REHEARSED, SKIPPED, Described, Phases
from mobius.records import parent_scope
from mobius.results import Report, skipped, to_jsonable
from mobius.safety.atomic import TEMP_PREFIX, atomic_write_text
from mobius.safety.diskspace import human_bytes
from mobius.safety.envfile import read_env_file
from mobius.safety.leftovers import rmtree_parallel, sweep
from mobius.safety.swap import recover_swap, swap_folder
from mobius.safety.tree import FILE, walk

if TYPE_CHECKING:
    from mobius.ops.step import StepContext

# The settings that follow a promote: how the product behaves (retention, timeouts, health-gate policy).
# Everything else stays with the environment: its places (library, backups, database, service, S3
# endpoint), its infrastructure (executor, Dask scheduler, workers, free-disk floor), its people
# (emergency contacts, notice lead time) and its secrets. A new setting stays until it is added here.
FOLLOWING = frozenset(ENV_PREFIX + name.upper() for name in (
    "backup_keep", "golden_per_os", "db_lock_timeout_ms", "db_statement_timeout_ms", "db_advisory_lock_wait_s",
    "db_backfill_pause_ms", "health_timeout_s", "health_interval_s", "health_successes"))


# in the name of A's dump in B's backups folder (db.dump.dump_path_for); no other command uses it
SOURCE_DUMP_LABEL = "promote"


def settings_to_follow(source: dict[str, str], target: dict[str, str]) -> dict[str, str]:
    """Source values of allow-listed settings (FOLLOWING) that the target lacks or has different."""
    return {k: v for k, v in source.items() if k in FOLLOWING and target.get(k) != v}


@dataclass
class PromoteResult:
    source: str
    target: str
    dry_run: bool
    plan: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    backup: str | None = None
    operation: str | None = None
    restored: dict[str, Any] | None = None


def sync_folder(source: Workspace, target: Workspace) -> Path:
    """state/envs/sync-A-to-B: the promote path's own folder (its sync journal, its marker, its database proof)."""
    return target.state / "envs" / f"sync-{source.environment}-to-{target.environment}"


def sync_workspace(source: Workspace, target: Workspace, *, create: bool = True) -> Workspace:
    """A private workspace whose library is the source's: the media migration journals the sync in it.

    Its root is state/envs/sync-A-to-B, so the journal (and the setting the migration switches at the
    end) belong to this promote path and never touch a real environment's settings. `create=False` (a dry
    run) only names it: a first promote's dry run leaves no folder behind.
    """
    root = sync_folder(source, target)
    if create:
        root.mkdir(parents=True, exist_ok=True)
    identity = target.settings.backup_identity_file  # the target repository's keys: its snapshots are encrypted
    values = {"library_dir": source.library, "backup_dir": target.backup_repository_url or str(target.backups),
              "backup_recipients": target.settings.backup_recipients,
              "backup_identity_file": str(target.resolve(identity)) if identity else None,
              "s3_endpoint_url": source.settings.s3_endpoint_url}
    settings = Settings.read({k: v for k, v in values.items() if v is not None})
    return Workspace(root=root, settings=settings)


def _marker(sync_ws: Workspace) -> Path:
    return sync_ws.root / "promoted.json"


def _last_promote(sync_ws: Workspace) -> dict[str, Any]:
    marker = _marker(sync_ws)
    return json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else {}


def _journaled(sync_ws: Workspace, target_library: str) -> bool:
    """The last promote's journal still describes the target: it completed, and the target's tree (paths,
    kinds, sizes, modes) is the one that promote left (a restore or a hand edit since means a full copy)."""
    from mobius.media import list_migrations

    left = _last_promote(sync_ws)
    now = state.tree_digest(Path(target_library), identity=True)["digest"]
    if left.get("target") != target_library or left.get("digest") != now:
        return False
    return any(r.target == target_library and r.status in ("completed", "switching")
               for r in list_migrations(sync_ws))


def _mark_in_sync(sync_ws: Workspace, source_library: str, target_library: str) -> None:
    atomic_write_text(_marker(sync_ws), json.dumps({
        "target": target_library, "digest": state.tree_digest(Path(target_library), identity=True)["digest"],
        "source_digest": state.tree_digest(Path(source_library))["digest"]}))


def through_snapshot(source: Workspace, target: Workspace) -> bool:
    """Is either library in object storage (the sync then goes through a snapshot, not the media migration)?"""
    return is_url(source.library) or is_url(target.library)


def object_library_plan(source: Workspace) -> dict[str, Any]:
    """What a sync through a snapshot reads: the source library's files; never "in sync" on a listing alone
    (equal keys and sizes say nothing of content), and an unchanged object or file is neither read nor
    written again."""
    listed = state.library_files_digest(source)
    return {"files": listed["files"], "bytes": listed["bytes"], "unchanged": 0, "in_sync": False,
            "journaled": False, "rehearsed": False,
            "mode": "through a snapshot of the source in the target's backup repository, restored into the target "
                    "(only changed content read, written or deleted; the result checked by listing)"}


def library_plan(sync_ws: Workspace, source: Path, target: Path) -> dict[str, Any]:
    """Files and bytes the sync will copy: a dry run of the media migration when a journal exists."""
    from mobius.media import migrate

    target_id = str(target)
    why = "first promote, or the target changed since the last one"
    if _journaled(sync_ws, target_id):
        try:
            result = migrate(sync_ws, target_id, dry_run=True, backup=False)
        except MobiusError as exc:  # the journal does not describe the target: a full copy, never a stuck plan
            why = f"the journal of the last promote does not match the target ({exc.message})"
        else:
            same_tree = _last_promote(sync_ws).get("source_digest") == state.tree_digest(source)["digest"]
            return {"files": result.planned_files, "bytes": result.planned_bytes, "unchanged": result.skipped,
                    "in_sync": same_tree and result.planned_files == 0, "journaled": True,
                    "mode": "changed files only (journal of the last promote)", "rehearsed": True}
    files = [e for e in walk(source) if e.kind == FILE] if source.is_dir() else []
    return {"files": len(files), "bytes": sum(e.size for e in files), "unchanged": 0, "in_sync": False,
            "journaled": False, "mode": "full copy: the target library is replaced by a verified full copy "
                                        f"(its current content is in the backup); {why}", "rehearsed": False}


def make_plan(root: Path, source: Workspace, target: Workspace, sync_ws: Workspace) -> dict[str, Any]:
    check_promote_places(source, target)
    diff = diff_environments(root, source.environment or "", target.environment or "")
    follow = settings_to_follow(read_env_file(source.env_file), read_env_file(target.env_file))
    library = (object_library_plan(source) if through_snapshot(source, target)
               else library_plan(sync_ws, Path(source.library), Path(target.library)))
    same_database = library["in_sync"] and databases_identical(source, target, sync_ws.root)[0]
    return {
        "nothing_to_do": bool(library["in_sync"] and same_database and not follow),
        "database_identical": same_database,
        "config_diff": diff.to_dict(),
        "schema_version": {source.environment: state.schema_version(source),
                           target.environment: state.schema_version(target)},
        "database_copy": f"{mask_text(source.database_url)} -> {mask_text(target.database_url)} "
                         f"(target replaced; dumped first)",
        "library_sync": {"from": source.library, "to": target.library, **library},
        "settings_to_follow": sorted(follow),
    }


def plan_lines(plan: dict[str, Any]) -> list[str]:
    lib = plan["library_sync"]
    versions = ", ".join(f"{k} {v}" for k, v in plan["schema_version"].items())
    return [f"plan: config differences: {len(plan['config_diff']['entries'])}"
            + ("; nothing to promote (library and database identical)" if plan["nothing_to_do"] else ""),
            f"plan: schema versions: {versions}",
            f"plan: database copy: {plan['database_copy']}",
            f"plan: library sync: {lib['files']} files ({human_bytes(lib['bytes'])}) to copy, {lib['unchanged']} "
            f"unchanged; {lib['mode']}",
            "plan: settings that follow: " + (", ".join(plan["settings_to_follow"]) or "none")]


def prepare_promote(root: Path, source_name: str, target_name: str, *, dry_run: bool = False,
                    confirm: Callable[[str], bool] | None = None,
                    say: Callable[[str], None] = lambda line: None) -> PromoteResult:
    """The plan of promoting A to B (printed), the dry run's phases, or the confirmation before the real run
    (which `mobius.ops.commands.promote` runs on the migration runner)."""
    if source_name == target_name:
        raise InputError("--from and --to name the same environment")
    source, target = load_environment(root, source_name), load_environment(root, target_name)
    check_promote_places(source, target)
    if not dry_run:  # a dry run changes nothing: the real run finishes an interrupted swap first
        _clear_interrupted_sync(target, say)
    sync_ws = sync_workspace(source, target, create=not dry_run)
    result = PromoteResult(source_name, target_name, dry_run)
    with parent_scope(""):  # a dry run's rehearsals (the sync's media migrate) are not operations
        result.plan = make_plan(root, source, target, sync_ws)
    for line in plan_lines(result.plan):
        say(line)
    if dry_run:
        steps = Phases(Described(say))
        steps.note("plan", REHEARSED, "read both environments, both databases and the sync journal")
        steps.note("backup", DESCRIBED, f"would snapshot {target.library}, {target.env_file.name} and the database "
                   "into its backup repository (only what changed since its last snapshot is stored)")
        steps.note("database copy", DESCRIBED, result.plan["database_copy"])
        lib = result.plan["library_sync"]
        steps.note("library sync", REHEARSED if lib["rehearsed"] else DESCRIBED,
                   f"{lib['files']} files, {human_bytes(lib['bytes'])}")
        steps.note("settings", DESCRIBED, ", ".join(result.plan["settings_to_follow"]) or "none")
        report = validate_environment(target, codecs=True)
        steps.note("validate", REHEARSED, f"target today: {report.verdict.value}")
        result.steps = steps.lines()
        return result
    if confirm is not None and not confirm(f"promote {source_name} to {target_name} (the target is backed up "
                                           "first)?"):
        raise InputError("promote not confirmed; nothing was changed")
    return result


def run_promote(ctx: StepContext, source_name: str, target_name: str) -> dict[str, Any]:
    """The promote's phases, each checkpointed in the step's undo handle (a resume continues at the first
    unfinished one). The handle holds B's verified backup and the snapshot taken before it from the moment
    the backup exists, before anything changes: the rollback (`rollback_promote`) needs nothing else."""
    source, target = load_environment(ctx.ws.root, source_name), load_environment(ctx.ws.root, target_name)
    check_promote_places(source, target)
    _clear_interrupted_sync(target, ctx.say)
    sync_ws = sync_workspace(source, target)
    handle: dict[str, Any] = dict(ctx.undo or {})
    steps = Phases(ctx, handle)
    if "plan" not in handle:
        handle["plan"] = make_plan(ctx.ws.root, source, target, sync_ws)
        ctx.record_undo(handle, defer=True)  # a read: committed with the backup's checkpoint (a resume plans again)
    plan = handle["plan"]
    if plan["nothing_to_do"]:
        reason = "nothing to promote: library unchanged since the last promote, databases identical"
        for name in ("backup", "database copy", "library sync", "settings"):
            steps.note(name, SKIPPED, reason)
        steps.run("validate", lambda: _validate(target), redo_safe=True)
        return handle

    target.backups.mkdir(parents=True, exist_ok=True)
    remove_dead_source_dumps(target)
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=target.backups) as scratch, \
            ThreadPoolExecutor(2, thread_name_prefix="promote-dump") as pool:
        dumps = _Dumps(pool, source, target, Path(scratch), steps)

        def backup() -> tuple[str, Any]:
            ahead = dumps.target
            dumped = ahead.result() if ahead is not None else restore_point.dump_ahead(target, Path(scratch))
            taken = restore_point.take(target, ctx.progress, database=dumped is not None, database_dump=dumped)
            handle.update(backup=taken.point.name, snapshot=before, has_database=taken.has_database)
            restore_point.protect(target, taken.point, "promote")
            return taken.evidence, taken.point.name

        try:
            before = steps.run("snapshot", lambda: ("library, database rows, settings digest",
                                                    state.snapshot(target)), redo_safe=True)
            steps.run("backup", backup)
            ctx.checkpoint("inside:env.promote")
            _apply(steps, source, target, sync_ws, plan, ctx.progress, dumps.source)
        finally:
            _wait_out(*dumps.started)
            dumps.discard_source()
    return handle


class _Dumps:
    """The promote's two database dumps, each on its own thread while B is snapshotted: B's, for B's restore point
    (restore_point.dump_ahead into `scratch`: the restore point no longer waits for it), and A's, which the
    database copy restores (db.dump_for_sync, in B's backups folder until the copy is proven). Each is taken
    only while its phase is still to run (a resume after the backup dumps B no second time); both only read."""

    def __init__(self, pool: ThreadPoolExecutor, source: Workspace, target: Workspace, scratch: Path,
                 steps: Phases):
        from mobius.db.api import dump_for_sync

        # each in a copy of this context: the dumps see the operation's record scope
        self.target = None if steps.recorded("backup") is not None else pool.submit(
            contextvars.copy_context().run, restore_point.dump_ahead, target, scratch)
        self.source = None if steps.recorded("database copy") is not None else pool.submit(
            contextvars.copy_context().run, dump_for_sync, target, source.database_url, label=SOURCE_DUMP_LABEL)

    @property
    def started(self) -> list[Future]:
        return [f for f in (self.target, self.source) if f is not None]

    def discard_source(self) -> None:
        """Remove A's dump when the run ends, however it ends: the copy removes the one it restored, and a run
        that failed or stopped before the copy leaves one nothing needs (a resume dumps A again; the rollback
        restores B's own dump). A removal that fails leaves an ordinary checked dump, never hides the run's end."""
        from mobius.db.dump import discard

        future = self.source
        if future is None or not future.done() or future.cancelled() or future.exception() is not None:
            return
        with contextlib.suppress(OSError):
            discard(future.result())


def remove_dead_source_dumps(target: Workspace) -> list[Path]:
    """A's dumps that a killed promote left in B's backups folder (`_Dumps.discard_source` removes them on every
    other end). Nothing reads them again: a resume dumps A anew, a rollback restores B's own dump. Called by a
    promote's run and rollback, under the runner's lock, so no other promote into B is taking one."""
    from mobius.db.dump import discard, labelled_dumps

    removed = []
    for dump in labelled_dumps(target.backups, SOURCE_DUMP_LABEL):
        with contextlib.suppress(OSError):  # a leftover that stays is an ordinary checked dump: never a failure
            discard(dump)
            removed.append(dump)
    return removed


def rollback_promote(ctx: StepContext, source_name: str, target_name: str, handle: dict[str, Any]) -> Report:
    """Put B back from the backup the promote took, proven against the snapshot taken before it."""
    with contextlib.suppress(MobiusError):  # an environment file gone: the rollback itself says what it can
        remove_dead_source_dumps(load_environment(ctx.ws.root, target_name))
    if not handle.get("backup"):
        return Report("env.promote rollback", [skipped("env.promote.undo", "the promote changed nothing "
                                                       "(it stopped before its backup, or had nothing to do)")])
    source, target = load_environment(ctx.ws.root, source_name), load_environment(ctx.ws.root, target_name)
    _marker(sync_workspace(source, target)).unlink(missing_ok=True)  # the journal no longer describes the target
    forget_proof(sync_folder(source, target))
    point = RestorePoint.parse(handle["backup"])
    ctx.say(f"restoring {target_name} from {point.label}")
    report = state.restore(target, point, expected=handle.get("snapshot"),
                           has_database=bool(handle.get("has_database", True)))
    report.subject = f"env.promote rollback: {report.subject}"
    if report.ok:
        ctx.say(f"{target_name} restored from {point.label} and verified")
        if not is_url(target.library):
            _remove_own_asides(Path(target.library))
        _clear_interrupted_sync(target, ctx.say)
    return report


def _validate(target: Workspace) -> tuple[str, Any]:
    """B's checks after the promote, as its preflight runs them: without the codec check, which a promote cannot
    change (it is this machine's FFmpeg build; `env validate` and deploy's preflight check it) and which cost
    every promote 0.1-0.25 s of importing PyAV."""
    report = validate_environment(target.reload(), codecs=False)
    report.raise_if_failed(hint=f"see `mobius env validate {target.environment}`")
    return f"{len(report.checks)} checks: {report.verdict.value}", report.verdict.value


def _aside_names(library: Path) -> tuple[Path, Path]:
    """An empty folder to swap in, and where the old library goes: temp names owned by this process, so a
    killed promote's copy of the old library is a leftover the next promote (or sweep) removes."""
    stem = f"{TEMP_PREFIX}{os.getpid()}-"
    return (library.with_name(f"{stem}promote-empty-{library.name}"),
            library.with_name(f"{stem}pre-promote-{library.name}"))


def _empty_the_library(library: Path) -> Path:
    """Swap an empty folder in for the target library (safety.swap: an intent first, repaired after a kill);
    returns the old library's new place. Its content is in the verified backup taken before."""
    empty, aside = _aside_names(library)
    empty.mkdir()
    return swap_folder(empty, library, old=aside) or aside


def _remove_own_asides(library: Path) -> None:
    """After a proven restore: the old library this run moved aside is no longer needed."""
    for path in _aside_names(library):
        if path.exists() or path.is_symlink():
            rmtree_parallel(path)


def _clear_interrupted_sync(target: Workspace, say: Callable[[str], None]) -> None:
    """Finish a library swap a killed promote left, and remove its old library (dead owner only); a library in
    object storage is never swapped (a re-run of its restore finishes it)."""
    if is_url(target.library):
        return
    library = Path(target.library)
    recovery = recover_swap(library)
    if recovery is not None:
        say(f"promote: {recovery.message()}")
    for path in sweep([library.parent]):
        say(f"promote: removed {path.name}, left by an interrupted promote (its content is in that promote's "
            "backup)")


def _apply(steps: Phases, source: Workspace, target: Workspace, sync_ws: Workspace, plan: dict[str, Any],
           progress: Any, source_dump: Future | None = None) -> None:
    """Database copy and library sync (at once, for a folder library: they touch different places, and each
    mostly waits, on the database's tools or on the disk), settings, validate. Every phase here may run
    again after a kill and give the same end (the copy overwrites, the sync is journaled, the settings are
    set to values, validate reads), so each checkpoint goes with the next write (`redo_safe`): the one
    that must be durable before anything changes, the backup's, was written before. `source_dump`: A's
    checked dump, being taken since before the backup (db.dump_for_sync)."""
    from mobius.db import sync_databases
    from mobius.db.dump import discard
    from mobius.media import migrate
    from mobius.media.migrate import PROCESSES_FROM

    def copy_database() -> tuple[str, Any]:  # B's checked dump is in the restore point: no second dump
        out = sync_databases(target, source.database_url, target.database_url, overwrite=True, dump_target=False,
                             source_dump=source_dump.result() if source_dump is not None else None)
        # the verify's row digests, taken here while the library sync runs beside: the verify then finds both
        # databases unchanged since (change tokens) instead of digesting them again after the sync
        same, _how = databases_identical(source, target, sync_ws.root)
        if not same:
            raise VerificationError(f"database copy: {target.environment}'s rows differ from {source.environment}'s "
                                    "after the copy (sha256 of every row)", hint="see the promote's record")
        discard(out.source_dump)  # its one use is over (a resume before this phase is recorded dumps A again)
        return f"{len(out.tables)} tables, row counts and row digests equal on both sides", len(out.tables)

    def sync_library() -> tuple[str, Any]:
        if through_snapshot(source, target):
            return _sync_through_snapshot(sync_ws, target, progress)
        target_lib = Path(target.library)
        aside = None
        trusted = plan["library_sync"].get("journaled") and _journaled(sync_ws, str(target_lib))
        if not trusted and target_lib.exists() and any(target_lib.iterdir()):
            aside = _empty_the_library(target_lib)
        out = migrate(sync_ws, str(target_lib), backup=False, progress=progress)
        if aside is not None:
            rmtree_parallel(aside)
        return (f"{out.planned_files} files copied ({human_bytes(out.planned_bytes)}), {out.skipped} unchanged, "
                f"every byte re-read at the target"), out.planned_files

    # not beside the copy when the media migration forks copy processes for many files (PROCESSES_FROM): it
    # forks while this process has no other thread (a fork keeps only the forking thread, and any lock another
    # one held stays held in the child); the plan under the lock counted the files to copy
    together = (not through_snapshot(source, target) and steps.recorded("library sync") is None
                and plan["library_sync"]["files"] < PROCESSES_FROM // 2)
    with ThreadPoolExecutor(1, thread_name_prefix="promote-library-sync") as pool:
        # the sync sees this operation's record scope (contextvars); a failure of either phase, Ctrl-C
        # included, propagates only after the sync ended, so the restore never runs beside a copy still writing
        library = pool.submit(contextvars.copy_context().run, sync_library) if together else None
        try:
            steps.run("database copy", copy_database, redo_safe=True)
            steps.run("library sync", library.result if library is not None else sync_library, redo_safe=True)
        finally:
            if library is not None:
                _wait_out(library)
    follow = settings_to_follow(read_env_file(source.env_file), read_env_file(target.env_file))
    steps.run("settings", lambda: (", ".join(follow) or "none to follow",
                                   to_jsonable(change_settings(environment_file(target.root, target.environment or ""),
                                                               follow)) if follow else []), redo_safe=True)
    steps.run("validate", lambda: _validate(target), redo_safe=True)
    if not through_snapshot(source, target):
        _mark_in_sync(sync_ws, source.library, target.library)


def _wait_out(*futures: Future) -> None:
    """Wait until every one of `futures` ended, through Ctrl-C (re-raised once they all ended)."""
    interrupted: BaseException | None = None
    while not all(f.done() for f in futures):
        try:
            wait(futures)
        except KeyboardInterrupt as exc:
            interrupted = exc
    if interrupted is not None:
        raise interrupted


def _sync_through_snapshot(sync_ws: Workspace, target: Workspace, progress: Any) -> tuple[str, Any]:
    """The source library (sync_ws's) as a snapshot in the target's repository, restored into the target
    library: the way a library in object storage, on either side, is synced (the media migration copies from
    a folder only, and a bucket cannot be swapped)."""
    from mobius.backup.api import create_snapshot, restore_snapshot, restore_snapshot_to_library

    taken = create_snapshot(sync_ws, database=False, progress=progress)
    if is_url(target.library):
        out = restore_snapshot_to_library(target, taken.id, progress=progress)
        return (f"snapshot {taken.id} of the source ({taken.new_files} files new to the repository) restored: "
                f"{out.written} objects written, {out.unchanged} unchanged, {out.deleted} deleted, listing checked",
                out.written)
    restored = restore_snapshot(target, taken.id, Path(target.library), progress=progress)
    if restored.rollback is not None:
        rmtree_parallel(restored.rollback)  # the old library: its content is in the promote's restore point
    return (f"snapshot {taken.id} of the source restored: {restored.files} files, each checked against its sha256",
            restored.files)
