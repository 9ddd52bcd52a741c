"""The environment steps: `env.promote {from, to}`, `env.deploy {force, backup}`, `env.rollback {archive}`.

`mobius env promote`, `mobius deploy` and `mobius rollback` each run one of them as a one-step plan on
the runner; a plan may use `env.promote` as one of its steps. Each step runs its command's phases
(ops.step.Phases) with a checkpoint per phase in its undo handle, so a resume after kill -9 continues
at the first unfinished phase. The handle holds the verified backup and the snapshot taken before it
from the moment the backup exists, before anything changes: the rollback restores from it and proves
the restore against the snapshot, with nothing but the record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from mobius.config import is_url
from mobius.errors import InputError
from mobius.ops.step import StepContext, StepParams, StepPlan, register_step
from mobius.results import RESOURCE_CHECKS, Report, failed, passed


class EnvPromoteParams(StepParams):
    source: str = Field(alias="from", min_length=1)
    target: str = Field(alias="to", min_length=1)
    # what `mobius env promote` computed and printed before it started the runner: the step's estimate uses it
    # instead of planning again (the phases still plan under the lock, from the environments as they are then)
    prepared: dict[str, Any] | None = None


@register_step("env.promote")
class EnvPromoteStep:
    name: ClassVar[str] = "env.promote"
    Params: ClassVar[type[StepParams]] = EnvPromoteParams
    probes: ClassVar[tuple[str, ...]] = ()  # it changes another environment; the probes measure this one

    def __init__(self, params: dict[str, Any]):
        checked = EnvPromoteParams.model_validate(params)
        if checked.source == checked.target:
            raise InputError("env.promote: `from` and `to` name the same environment")
        self.source, self.target, self.prepared = checked.source, checked.target, checked.prepared

    def _both(self, ctx: StepContext) -> tuple[Any, Any]:
        from mobius.envs.environments import load_environment
        from mobius.envs.places import check_promote_places

        source, target = load_environment(ctx.ws.root, self.source), load_environment(ctx.ws.root, self.target)
        check_promote_places(source, target)
        return source, target

    def plan(self, ctx: StepContext) -> StepPlan:
        from mobius.envs.promote import make_plan, plan_lines, sync_workspace

        source, target = self._both(ctx)
        plan = self.prepared or make_plan(ctx.ws.root, source, target, sync_workspace(source, target))
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
        # a check of room under its own name, so that a target short of disk alone is refused with exit 5
        room = [c for c in checks.failures() if c.name in RESOURCE_CHECKS]
        bad = [c.name for c in checks.failures() if c not in room]
        report.add((failed if bad else passed)("env.promote.target", "fail" if bad else "pass", source="env validate",
                                               detail=", ".join(bad) or f"{len(checks.checks) - len(room)} checks"))
        report.extend(room)
        return report

    def apply(self, ctx: StepContext) -> Any:
        from mobius.envs.promote import run_promote

        return run_promote(ctx, self.source, self.target)

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        from mobius.envs import state
        from mobius.envs.database_proof import databases_identical
        from mobius.envs.promote import sync_folder

        source, target = self._both(ctx)
        report = Report("env.promote verify")
        same_rows, how = databases_identical(source, target, sync_folder(source, target))
        report.add((passed if same_rows else failed)("env.promote.database", "identical" if same_rows else
                                                     "differs", threshold="identical", source=how))
        if is_url(source.library) or is_url(target.library):
            a, b = state.library_files_digest(source), state.library_files_digest(target)
            how = "every file's path and size (object storage keeps no folders or modes)"
        else:
            a, b = state.tree_digest(Path(source.library)), state.tree_digest(Path(target.library))
            how = "tree digest (paths, sizes, modes)"
        report.add((passed if a == b else failed)("env.promote.library", b["files"], threshold=a["files"],
                                                  unit="files", source=how))
        return report

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        from mobius.envs.promote import rollback_promote

        return rollback_promote(ctx, self.source, self.target, handle or {})


class EnvDeployParams(StepParams):
    force: bool = False
    backup: bool = True


@register_step("env.deploy")
class EnvDeployStep:
    """`mobius deploy`: preflight, backup, migrations, pipeline self-test, release, restart, health gate."""

    name: ClassVar[str] = "env.deploy"
    Params: ClassVar[type[StepParams]] = EnvDeployParams
    probes: ClassVar[tuple[str, ...]] = ("pipeline_test", "service_ready")

    def __init__(self, params: dict[str, Any]):
        checked = EnvDeployParams.model_validate(params)
        self.force, self.backup = checked.force, checked.backup

    def plan(self, ctx: StepContext) -> StepPlan:
        return StepPlan(f"deploy {ctx.ws.environment or 'the workspace'}: back up, migrate the database, self-test, "
                        "record the release, restart, wait for the health gate")

    def preflight(self, ctx: StepContext) -> Report:
        from mobius.envs.deploy import forced_preflight

        return forced_preflight(ctx.ws, force=self.force)

    def apply(self, ctx: StepContext) -> Any:
        from mobius.envs.deploy import run_deploy

        return run_deploy(ctx, force=self.force, backup=self.backup)

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        return _phases_report(self.name, handle)

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        from mobius.envs.deploy import rollback_deploy

        return rollback_deploy(ctx, handle or {})


class EnvRollbackParams(StepParams):
    archive: str = Field(min_length=1)  # a snapshot id, or an archive's path (envs.restore_point)


@register_step("env.rollback")
class EnvRollbackStep:
    """`mobius rollback`: verify the archive, back up the current state, restore, restart, health gate."""

    name: ClassVar[str] = "env.rollback"
    Params: ClassVar[type[StepParams]] = EnvRollbackParams
    probes: ClassVar[tuple[str, ...]] = ("service_ready",)

    def __init__(self, params: dict[str, Any]):
        self.archive = EnvRollbackParams.model_validate(params).archive

    def plan(self, ctx: StepContext) -> StepPlan:
        from mobius.envs.restore_point import RestorePoint

        return StepPlan(f"roll {ctx.ws.environment or 'the workspace'} back to "
                        f"{RestorePoint.parse(self.archive).label} (the current state is backed up first)")

    def preflight(self, ctx: StepContext) -> Report:
        from mobius.envs import restore_point

        report = Report("env.rollback preflight")
        found = restore_point.exists(ctx.ws, restore_point.RestorePoint.parse(self.archive))
        report.add((passed if found else failed)("env.rollback.archive", self.archive, source="backups"))
        return report

    def apply(self, ctx: StepContext) -> Any:
        from mobius.envs.rollback import run_rollback

        return run_rollback(ctx, self.archive)

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        return _phases_report(self.name, handle)

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        from mobius.envs.rollback import undo_rollback

        return undo_rollback(ctx, handle or {})


def _phases_report(name: str, handle: Any) -> Report:
    """Every phase of the command ended done, or said why it did not run (skipped, not configured)."""
    phases = (handle or {}).get("phases", [])
    bad = [p["step"] for p in phases if p["status"] == "failed"]
    return Report(f"{name} verify", [(failed if bad else passed)(f"{name}.phases", len(phases) - len(bad),
                                                                 threshold=len(phases), unit="phases",
                                                                 detail=", ".join(bad))])


def _files(folder: Path) -> list[Any]:
    from mobius.safety.tree import FILE, walk

    return [e for e in walk(folder) if e.kind == FILE] if folder.is_dir() else []
