"""`env.promote {from, to}`: one environment promoted to another (mobius.envs.promote) as a plan step.

The promote takes its own verified backup of the target and restores it on any failure of its own;
the step's undo handle (that archive and the target's snapshot) is recorded the moment the backup
exists, before anything changes, so the plan's rollback (a later step or validation failed, or a
kill) restores the target from it and proves the restore against the snapshot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from mobius.errors import InputError
from mobius.ops.step import StepContext, StepParams, StepPlan, register_step
from mobius.results import Report, failed, passed, skipped


class EnvPromoteParams(StepParams):
    source: str = Field(alias="from", min_length=1)
    target: str = Field(alias="to", min_length=1)


@register_step("env.promote")
class EnvPromoteStep:
    name: ClassVar[str] = "env.promote"
    Params: ClassVar[type[StepParams]] = EnvPromoteParams
    probes: ClassVar[tuple[str, ...]] = ()  # it changes another environment; the probes measure this one

    def __init__(self, params: dict[str, Any]):
        checked = EnvPromoteParams.model_validate(params)
        if checked.source == checked.target:
            raise InputError("env.promote: `from` and `to` name the same environment")
        self.source, self.target = checked.source, checked.target

    def _both(self, ctx: StepContext) -> tuple[Any, Any]:
        from mobius.envs.environments import load_environment
        from mobius.envs.places import check_promote_places

        source, target = load_environment(ctx.ws.root, self.source), load_environment(ctx.ws.root, self.target)
        check_promote_places(source, target)
        return source, target

    def plan(self, ctx: StepContext) -> StepPlan:
        from mobius.envs.promote import make_plan, plan_lines, sync_workspace

        source, target = self._both(ctx)
        plan = make_plan(ctx.ws.root, source, target, sync_workspace(source, target))
        library = Path(target.library)
        size = sum(e.size for e in _files(library))  # the target's backup
        return StepPlan(f"promote {self.source} to {self.target}: back up {self.target}, copy the database, sync "
                        "the library, carry the allow-listed settings, validate",
                        writes_bytes=size + plan["library_sync"]["bytes"], estimate_s=2.0 + size / 50e6,
                        details=plan_lines(plan), rehearsed=bool(plan["library_sync"]["rehearsed"]))

    def preflight(self, ctx: StepContext) -> Report:
        from mobius.envs.validate import validate_environment

        report = Report("env.promote preflight")
        try:
            _source, target = self._both(ctx)
        except InputError as exc:
            report.add(failed("env.promote.places", None, detail=exc.message))
            return report
        report.add(passed("env.promote.places", f"{self.source} -> {self.target}",
                          detail="libraries, backups and databases apart"))
        checks = validate_environment(target, codecs=False)
        bad = [c.name for c in checks.failures()]
        report.add((failed if bad else passed)("env.promote.target", checks.verdict.value, source="env validate",
                                               detail=", ".join(bad) or f"{len(checks.checks)} checks"))
        return report

    def apply(self, ctx: StepContext) -> Any:
        from mobius.envs.promote import promote

        handle = dict(ctx.undo or {})  # a killed run's handle keeps the first backup: the state before the step

        def on_backup(archive: Path, snapshot: dict[str, Any]) -> None:
            if "backup" not in handle:
                handle.update(backup=str(archive), snapshot=snapshot)
                ctx.record_undo(handle)
            ctx.checkpoint("inside:env.promote")

        result = promote(ctx.ws.root, self.source, self.target, say=ctx.say, progress=ctx.progress,
                         on_backup=on_backup)
        handle.update(operation=result.operation, nothing_to_do=bool(result.plan.get("nothing_to_do")))
        ctx.record_undo(handle)
        return handle

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        from mobius.envs import state

        source, target = self._both(ctx)
        report = Report("env.promote verify")
        same_rows = state.database_digest(source) == state.database_digest(target)
        report.add((passed if same_rows else failed)("env.promote.database", "identical" if same_rows else
                                                     "differs", threshold="identical", source="sha256 of every row"))
        a, b = state.tree_digest(Path(source.library)), state.tree_digest(Path(target.library))
        report.add((passed if a == b else failed)("env.promote.library", b["files"], threshold=a["files"],
                                                  unit="files", source="tree digest (paths, sizes, modes)"))
        return report

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        from mobius.backup import DATABASE_MEMBER, verify_archive
        from mobius.envs import state
        from mobius.envs.environments import load_environment

        handle = handle or {}
        if not handle.get("backup"):
            return Report("env.promote rollback", [skipped("env.promote.undo", "the promote changed nothing "
                                                           "(it stopped before its backup, or had nothing to do)")])
        target = load_environment(ctx.ws.root, self.target)
        archive = Path(handle["backup"])
        has_database = DATABASE_MEMBER in verify_archive(archive).extras
        report = state.restore(target, archive, expected=handle.get("snapshot"), has_database=has_database)
        report.subject = f"env.promote rollback: {report.subject}"
        return report


def _files(folder: Path) -> list[Any]:
    from mobius.safety.tree import FILE, walk

    return [e for e in walk(folder) if e.kind == FILE] if folder.is_dir() else []
