"""`db.migrate {to}`: pending database migrations (mobius.db); undo = db rollback to the version before.

The handle (the version before and a digest of schema and rows) is recorded before anything is
applied; the db runner's history resumes a half-applied phased migration on the next run.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from mobius.errors import InputError
from mobius.ops.digests import database_digest
from mobius.ops.step import StepContext, StepParams, StepPlan, register_step
from mobius.results import Check, Report, failed, passed, skipped, to_jsonable

if TYPE_CHECKING:
    from mobius.db.results import RehearsalReport


class DbMigrateParams(StepParams):
    to: int | None = Field(None, ge=0)  # a schema version; default: the latest
    backup: bool = True  # the checked dump before migrating (`mobius db migrate --no-backup`: False)
    rehearse: bool = False  # first on a throwaway copy, then ask (`mobius db migrate --rehearse`)


@register_step("db.migrate")
class DbMigrateStep:
    name: ClassVar[str] = "db.migrate"
    Params: ClassVar[type[StepParams]] = DbMigrateParams
    probes: ClassVar[tuple[str, ...]] = ("service_ready",)  # the schema changes: what the service answers

    def __init__(self, params: dict[str, Any]):
        checked = DbMigrateParams.model_validate(params)
        self.to, self.backup, self.rehearse = checked.to, checked.backup, checked.rehearse

    def plan(self, ctx: StepContext) -> StepPlan:
        from mobius.db import database_status
        from mobius.db.engine import target_for

        status = database_status(ctx.ws)
        pending = [p for p in status.pending if self.to is None or p["version"] <= self.to]
        target = target_for(ctx.ws)
        size = target.sqlite_path.stat().st_size if target.is_sqlite and target.sqlite_path.exists() else 0
        return StepPlan(f"apply {len(pending)} migration(s) to {status.database} (version "
                        f"{status.current_version} -> {self.to if self.to is not None else 'latest'})",
                        writes_bytes=2 * size, estimate_s=0.5 + 0.5 * len(pending),
                        details=[f"pending {p['version']:04d}_{p['name']}" for p in pending])

    def preflight(self, ctx: StepContext) -> Report:
        from mobius.db import database_status

        report = Report("db.migrate preflight")
        try:
            status = database_status(ctx.ws)
        except Exception as exc:  # noqa: BLE001 - unreachable is a verdict here, not a crash
            report.add(failed("db.reachable", None, source="database_status", detail=str(exc)[:300]))
            return report
        report.add(passed("db.reachable", status.database, source="database_status",
                          detail=f"version {status.current_version}"))
        pending = [f"{p['version']:04d}_{p['name']}" for p in status.pending
                   if self.to is None or p["version"] <= self.to]
        report.add(passed("db.pending", len(pending), unit="migrations", source="db status",
                          detail=", ".join(pending) or "none"))
        report.add((failed if status.drift else passed)("db.drift", len(status.drift), threshold=0,
                                                         source="db validate"))
        return report

    def rehearse(self, ctx: StepContext) -> dict[str, Any]:
        """The plan on a throwaway copy of the database (db migrate --rehearse); its measured time."""
        from mobius.db import migrate_database
        from mobius.records import parent_scope

        seen: dict[str, Any] = {}

        def keep(report: RehearsalReport) -> None:
            seen.update(to_jsonable(report))

        # "not confirmed": rehearsed, real db untouched; evidence of the preflight, not an operation of its own
        with contextlib.suppress(InputError), parent_scope(""):
            migrate_database(ctx.ws, to=self.to, backup=False, rehearse=True, on_rehearsal=keep,
                             confirm=lambda question: False)
        return seen

    def apply(self, ctx: StepContext) -> Any:
        from mobius.db import database_status, migrate_database

        handle = dict(ctx.undo or {})
        if not handle:
            handle = {"previous_version": database_status(ctx.ws).current_version,
                      "digest": database_digest(ctx.ws)}
            ctx.record_undo(handle)
        ctx.checkpoint("inside:db.migrate")
        result = migrate_database(ctx.ws, to=self.to, backup=self.backup, progress=ctx.progress,
                                  rehearse=self.rehearse, confirm=ctx.confirm,
                                  on_rehearsal=lambda report: _say_rehearsal(ctx, report))
        handle["version"] = result.current_version
        handle["applied"] = [o.version for o in result.applied]
        handle["run_id"] = result.run_id
        ctx.record_undo(handle)
        return handle

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        from mobius.db import check_database, database_status

        report = Report("db.migrate verify")
        version = database_status(ctx.ws).current_version
        wanted = self.to if self.to is not None else handle.get("version")
        report.add((passed if version == wanted else failed)("db.version", version, threshold=wanted,
                                                             source="schema_migrations"))
        report.extend(_check_report(check_database(ctx.ws)))
        return report

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        from mobius.db import database_status, rollback_database

        report = Report("db.migrate rollback")
        handle = handle or {}
        previous = handle.get("previous_version")
        if previous is None:
            report.add(skipped("db.undo", "the step never started"))
            return report
        current = database_status(ctx.ws).current_version
        if current > previous:
            rollback_database(ctx.ws, to=previous, confirm=lambda question: True, progress=ctx.progress)
        report.add(_version_restored(ctx, previous))
        report.add(_rows_restored(ctx, handle.get("digest")))
        return report


def _version_restored(ctx: StepContext, previous: int) -> Check:
    """The undo's first proof: the schema is back at the version before the step."""
    from mobius.db import database_status

    version = database_status(ctx.ws).current_version
    return (passed if version == previous else failed)("db.version.restored", version, threshold=previous,
                                                       source="schema_migrations")


def _rows_restored(ctx: StepContext, before: str | None, *, detail: str | None = "") -> Check:
    """The undo's second proof: schema and rows hash to what they did before the step."""
    digest = database_digest(ctx.ws)
    return (passed if digest == before else failed)(
        "db.schema_rows.restored", (digest or "")[:16], threshold=(before or "")[:16],
        source="sha256 of schema and rows (history excluded)", detail=detail)


def _say_rehearsal(ctx: StepContext, report: RehearsalReport) -> None:
    for item in report.migrations:
        verify = ", ".join(f"{v.query} -> {v.value}" for v in item.verify)
        ctx.say(f"rehearsed {item.version:04d}_{item.name} on a copy: {item.execution_ms} ms; verify {verify}")


def _check_report(report: Report) -> list:
    problems = [c.detail or c.name for c in report.failures()]
    return [(failed if problems else passed)("db.check", len(problems), threshold=0, unit="problems",
                                             source="mobius db check", detail="; ".join(problems[:3]))]


class DbRollbackParams(StepParams):
    to: int | None = Field(None, ge=0)  # the version to go back to; default: undo the latest migration


@register_step("db.rollback")
class DbRollbackStep:
    """`mobius db rollback`: down sections newest first (mobius.db); undo = the dump it took first, restored.

    The handle (the version before and a digest of schema and rows) is recorded before anything runs; the
    dump's path joins it when the call returns. Killed before that, the undo migrates forward again to the
    version before and proves the digest (a down section that dropped data cannot be proved back: it says so).
    """

    name: ClassVar[str] = "db.rollback"
    Params: ClassVar[type[StepParams]] = DbRollbackParams
    probes: ClassVar[tuple[str, ...]] = ("service_ready",)

    def __init__(self, params: dict[str, Any]):
        self.to: int | None = DbRollbackParams.model_validate(params).to

    def plan(self, ctx: StepContext) -> StepPlan:
        from mobius.db import database_status

        status = database_status(ctx.ws)
        return StepPlan(f"roll {status.database} back from version {status.current_version} to "
                        f"{self.to if self.to is not None else 'the one before'}", estimate_s=1.0)

    def preflight(self, ctx: StepContext) -> Report:
        return Report("db.rollback preflight", [skipped("db.rollback.checks", "checked by mobius db rollback "
                                                        "itself, before it changes anything")])

    def apply(self, ctx: StepContext) -> Any:
        from mobius.db import database_status, rollback_database

        handle = dict(ctx.undo or {})
        if not handle:
            status = database_status(ctx.ws)
            versions = sorted((r["version"] for r in status.applied), reverse=True)
            handle = {"previous_version": status.current_version, "digest": database_digest(ctx.ws),
                      "target": self.to if self.to is not None else versions[1] if len(versions) > 1 else 0}
            ctx.record_undo(handle)
            to = self.to  # the call's own default: its own message when there is nothing to roll back
        else:  # a resume: to the version the killed run meant, which it may have reached already
            to = handle["target"]
            if database_status(ctx.ws).current_version == to:
                handle.setdefault("version", to)
                return handle
        ctx.checkpoint("inside:db.rollback")
        result = rollback_database(ctx.ws, to=to, confirm=ctx.confirm, progress=ctx.progress)
        handle.update(version=result.current_version, run_id=result.run_id,
                      dump=str(result.dump.path) if result.dump else None)
        ctx.record_undo(handle)  # the dump, for the undo, from now on
        return handle

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        from mobius.db import database_status

        version = database_status(ctx.ws).current_version
        return Report("db.rollback verify", [(passed if version == handle.get("version") else failed)(
            "db.version", version, threshold=handle.get("version"), source="schema_migrations")])

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        from mobius.db import database_status, migrate_database
        from mobius.db.api import restore_with_report

        report = Report("db.rollback rollback")
        handle = handle or {}
        previous = handle.get("previous_version")
        if previous is None:
            report.add(skipped("db.undo", "the step never started"))
            return report
        if database_digest(ctx.ws) != handle.get("digest"):
            if handle.get("dump"):
                restore_with_report(ctx.ws, Path(handle["dump"]))
            elif database_status(ctx.ws).current_version < previous:
                migrate_database(ctx.ws, to=previous, backup=True, progress=ctx.progress)
        report.add(_version_restored(ctx, previous))
        report.add(_rows_restored(ctx, handle.get("digest"),
                                  detail=handle.get("dump") or "no dump recorded: migrated forward again"))
        return report


class DbRestoreParams(StepParams):
    dump: str = Field(min_length=1)  # a file written by `mobius db dump` (an absolute path)


@register_step("db.restore")
class DbRestoreStep:
    """`mobius db restore DUMP`: the database replaced, all or nothing (mobius.db); undo = the dump of the database
    it replaced (taken by the call before it changes anything), restored, and the digest of before proved."""

    name: ClassVar[str] = "db.restore"
    Params: ClassVar[type[StepParams]] = DbRestoreParams
    probes: ClassVar[tuple[str, ...]] = ("service_ready",)

    def __init__(self, params: dict[str, Any]):
        self.dump = Path(DbRestoreParams.model_validate(params).dump)

    def plan(self, ctx: StepContext) -> StepPlan:
        size = self.dump.stat().st_size if self.dump.is_file() else 0
        return StepPlan(f"replace the database with {self.dump}", writes_bytes=2 * size, estimate_s=1.0)

    def preflight(self, ctx: StepContext) -> Report:
        return Report("db.restore preflight", [(passed if self.dump.is_file() else failed)(
            "db.restore.dump", str(self.dump), source="file")])

    def apply(self, ctx: StepContext) -> Any:
        from mobius.db import database_is_empty
        from mobius.db.api import restore_with_report

        handle = dict(ctx.undo or {})
        if not handle:
            handle = {"digest": database_digest(ctx.ws), "empty": database_is_empty(ctx.ws)}
            ctx.record_undo(handle)
        ctx.checkpoint("inside:db.restore")
        result = restore_with_report(ctx.ws, self.dump)
        handle["safety_dump"] = str(result.safety_dump) if result.safety_dump else None
        ctx.record_undo(handle)  # the dump of the replaced database, for the undo, from now on
        return handle

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        from mobius.db import check_database

        return Report("db.restore verify", _check_report(check_database(ctx.ws)))

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        from mobius.db.api import restore_with_report

        report = Report("db.restore rollback")
        handle = handle or {}
        if "digest" not in handle:
            report.add(skipped("db.undo", "the step never started"))
            return report
        if database_digest(ctx.ws) != handle["digest"]:
            if not handle.get("safety_dump"):
                report.add(failed("db.restore.undo", None, detail="the database was empty before the restore (no "
                                  "dump of it was taken)" if handle.get("empty") else "killed before the dump of "
                                  "the replaced database was recorded"))
                return report
            restore_with_report(ctx.ws, Path(handle["safety_dump"]), safety_dump=False)
        report.add(_rows_restored(ctx, handle["digest"], detail=handle.get("safety_dump")))
        return report


class DbSyncParams(StepParams):
    from_url: str = Field(min_length=1)  # the source database URL (the record masks its password)
    to_url: str = Field(min_length=1)  # the target, replaced
    overwrite: bool = False  # `mobius db sync --yes`: a target that is not empty may be replaced


def _presync_dumps(ws: Any, url: str) -> list[str]:
    """The dumps `db sync` took of the target at `url` before replacing it (backups/..._presync_...), by name."""
    from mobius.db import dump as dumps
    from mobius.db.engine import target_for

    name = dumps.dump_path_for(ws, target_for(ws, url), label="presync").name
    stem = name[:name.index("_presync_")].rsplit("_", 1)[0]  # mobius_db_<name> without the stamp
    form = re.compile(rf"{re.escape(stem)}_\d{{8}}T\d{{6}}Z_presync_[0-9a-f]+\.[a-z0-9]+")
    return sorted(p.name for p in ws.backups.glob(f"{stem}_*_presync_*") if form.fullmatch(p.name))


def _unmasked(ws: Any, url: str) -> str | None:
    """`url` as the record holds it, usable again: as given, or the workspace's own database URL when the record
    masked its password; None when the password is not known here."""
    from mobius.masking import MASK, mask_text

    if MASK not in url:
        return url
    return ws.database_url if mask_text(ws.database_url) == url else None


@register_step("db.sync")
class DbSyncStep:
    """`mobius db sync --from A --to B`: database B replaced by a copy of A (mobius.db); undo = B as it was: the
    dump the sync took of it first, restored, and the digest of B taken before the work proved.

    The handle (B's digest and the presync dumps already there) is recorded before anything changes, so a
    kill between the sync's dump of B and the record of its name still finds that dump (the one not there
    before: two syncs into one target never run at once, the target's migration lock sees to that). A URL
    whose password the record masked cannot be resumed (run the command again); its undo works when it is
    the workspace's own database, else it names the dump to restore by hand.
    """

    name: ClassVar[str] = "db.sync"
    Params: ClassVar[type[StepParams]] = DbSyncParams
    probes: ClassVar[tuple[str, ...]] = ("service_ready",)

    def __init__(self, params: dict[str, Any]):
        checked = DbSyncParams.model_validate(params)
        self.from_url, self.to_url, self.overwrite = checked.from_url, checked.to_url, checked.overwrite

    def plan(self, ctx: StepContext) -> StepPlan:
        from mobius.masking import mask_text

        return StepPlan(f"replace {mask_text(self.to_url)} with a copy of {mask_text(self.from_url)} (dumped first)",
                        estimate_s=2.0)

    def preflight(self, ctx: StepContext) -> Report:
        return Report("db.sync preflight", [skipped("db.sync.checks", "checked by mobius db sync itself, before it "
                                                    "changes anything")])

    def apply(self, ctx: StepContext) -> Any:
        from mobius.db import sync_databases
        from mobius.db.api import check_sync

        source, target = _unmasked(ctx.ws, self.from_url), _unmasked(ctx.ws, self.to_url)
        if source is None or target is None:
            raise InputError("a database URL's password is not in the record, so this db sync cannot be resumed",
                             hint="run mobius db sync --from ... --to ... again")
        check_sync(ctx.ws, source, target)  # its own refusals first, before the target is read for the handle
        handle = dict(ctx.undo or {})
        overwrite = self.overwrite
        if not handle:
            handle = {"digest": database_digest(ctx.ws, target), "dumps_before": _presync_dumps(ctx.ws, target)}
            ctx.record_undo(handle)
        elif database_digest(ctx.ws, target) != handle["digest"]:
            overwrite = True  # the killed run replaced the target already: what is there now is this sync's own
        if not handle.get("target_dump"):
            handle["target_dump"] = _new_dump(ctx.ws, target, handle)  # a killed run's dump of the target
        ctx.checkpoint("inside:db.sync")
        result = sync_databases(ctx.ws, source, target, overwrite=overwrite)
        if not handle.get("target_dump"):
            handle["target_dump"] = str(result.target_dump) if result.target_dump else None
        ctx.record_undo(handle)  # the dump of the target as it was, for the undo, from now on
        return handle

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        source, target = _unmasked(ctx.ws, self.from_url), _unmasked(ctx.ws, self.to_url)
        if source is None or target is None:
            return Report("db.sync verify", [skipped("db.sync.copied", "a URL's password is not in the record")])
        copied, original = database_digest(ctx.ws, target), database_digest(ctx.ws, source)
        return Report("db.sync verify", [(passed if copied == original else failed)(
            "db.sync.copied", (copied or "")[:16], threshold=(original or "")[:16],
            source="sha256 of schema and rows of target and source (history excluded)")])

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        from mobius.db import dump as dumps
        from mobius.db.engine import target_for

        report = Report("db.sync rollback")
        handle = handle or {}
        if "digest" not in handle:
            report.add(skipped("db.undo", "the step never started"))
            return report
        target = _unmasked(ctx.ws, self.to_url)
        dump = handle.get("target_dump") or (_new_dump(ctx.ws, target, handle) if target else None)
        if target is None:
            report.add(failed("db.sync.undo", None, detail="the target URL's password is not in the record; restore "
                              f"{dump or 'its presync dump'} into it by hand"))
            return report
        if database_digest(ctx.ws, target) != handle["digest"]:
            if handle["digest"] is None and target_for(ctx.ws, target).is_sqlite:
                _remove_sqlite(target_for(ctx.ws, target).sqlite_path)  # there was no database file before
            elif dump:
                dumps.restore(target_for(ctx.ws, target), Path(dump))
        digest = database_digest(ctx.ws, target)
        report.add((passed if digest == handle["digest"] else failed)(
            "db.schema_rows.restored", (digest or "")[:16], threshold=(handle["digest"] or "")[:16],
            source="sha256 of the target's schema and rows (history excluded)", detail=dump or ""))
        return report


def _new_dump(ws: Any, url: str, handle: dict[str, Any]) -> str | None:
    """The presync dump of the target that was not there when the step began (a killed run's), if any."""
    new = [name for name in _presync_dumps(ws, url) if name not in set(handle.get("dumps_before") or [])]
    return str(ws.backups / new[-1]) if new else None


def _remove_sqlite(path: Path) -> None:
    """A SQLite database the sync created where there was none: the file and its journal files, gone."""
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"),
                     path.with_name(path.name + "-journal")):
        leftover.unlink(missing_ok=True)
