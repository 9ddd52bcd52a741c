"""`golden.update {games}`: render, then regenerate those games' goldens (mobius.golden approve).

The handle is taken first: a golden backup of tests/golden as it was (or "there were none") and
its tree digest; undo restores that backup and proves the tree is byte-identical again. The goldens
it writes are format 2 (signatures.npz beside the pinned frames: every frame and the soundtrack);
verify holds each game's render to all of its checks and proves each updated golden carries them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from mobius.errors import VerificationError
from mobius.ops.digests import tree_digest
from mobius.ops.step import StepContext, StepParams, StepPlan, register_step
from mobius.results import Report, failed, passed, skipped
from mobius.safety.swap import swap_folder


class GoldenUpdateParams(StepParams):
    games: list[str] | None = None  # game slugs; default: every game in games/


@register_step("golden.update")
class GoldenUpdateStep:
    name: ClassVar[str] = "golden.update"
    Params: ClassVar[type[StepParams]] = GoldenUpdateParams
    probes: ClassVar[tuple[str, ...]] = ("golden_check",)  # the goldens change: checking against them

    def __init__(self, params: dict[str, Any]):
        self.games: list[str] | None = GoldenUpdateParams.model_validate(params).games

    def _games(self, ctx: StepContext) -> list[str]:
        from mobius.render.spec import list_specs

        return self.games or [p.stem for p in list_specs(ctx.ws.games)]

    def plan(self, ctx: StepContext) -> StepPlan:
        games = self._games(ctx)
        return StepPlan(f"render and regenerate the goldens of {', '.join(games) or 'no game'}",
                        writes_bytes=12_000_000 * len(games), estimate_s=8.0 * len(games))

    def preflight(self, ctx: StepContext) -> Report:
        from mobius.render.spec import spec_path

        report = Report("golden.update preflight")
        for game in self._games(ctx):
            path = spec_path(ctx.ws.games, game)
            report.add((passed if Path(path).is_file() else failed)(f"golden.spec.{game}", str(path),
                                                                    source="games/"))
        return report

    def apply(self, ctx: StepContext) -> Any:
        from mobius.approval import approve
        from mobius.golden.archive import backup_goldens, has_goldens

        handle = dict(ctx.undo or {})
        if not handle:
            had = has_goldens(ctx.ws)
            handle = {"archive": str(backup_goldens(ctx.ws, progress=ctx.progress).path) if had else None,
                      "digest": tree_digest(ctx.ws.golden)}
            ctx.record_undo(handle)
        ctx.checkpoint("inside:golden.update")
        result = approve(ctx.ws, self._games(ctx), progress=ctx.progress)
        handle["games"] = [g.game for g in result.games]
        ctx.record_undo(handle)
        return handle

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        from mobius.golden.baseline import baseline_folder, per_os_enabled
        from mobius.golden.signatures import FILE
        from mobius.golden.workflow import check_all

        report = Report("golden.update verify")
        for game_report in check_all(ctx.ws, progress=ctx.progress):
            bad = [c.name for c in game_report.checks if not c.passed]
            report.add((failed if bad else passed)(f"golden.check.{game_report.game}", len(bad), threshold=0,
                                                   unit="failed checks", source="golden check-all",
                                                   detail=", ".join(bad[:5])))
        for game in (handle or {}).get("games", []):
            stored = baseline_folder(ctx.ws, game, per_os=per_os_enabled(ctx.ws)) / FILE
            report.add((passed if stored.is_file() else failed)(
                f"golden.signatures.{game}", str(stored), source="tests/golden",
                detail="every frame and the soundtrack are pinned" if stored.is_file()
                else "the regenerated golden lacks its signatures"))
        return report

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        return _put_back(ctx, handle, "golden.update rollback")


def _put_back(ctx: StepContext, handle: Any, title: str) -> Report:
    """tests/golden as the handle found it: its golden backup restored (or, when there were no goldens, none
    left), proved by the tree digest taken before."""
    from mobius.golden.archive import restore_goldens

    report = Report(title)
    if not handle:
        report.add(skipped("golden.undo", "the step never started"))
        return report
    if tree_digest(ctx.ws.golden) != handle["digest"]:
        if handle.get("archive"):
            restore_goldens(ctx.ws, Path(handle["archive"]), progress=ctx.progress)
        elif not handle.get("had"):
            empty = Path(tempfile.mkdtemp(prefix=".mobius-tmp-golden-", dir=ctx.ws.golden.parent))
            aside = swap_folder(empty, ctx.ws.golden)
            if aside is not None:
                shutil.rmtree(aside, ignore_errors=True)
    digest = tree_digest(ctx.ws.golden)
    report.add((passed if digest == handle["digest"] else failed)(
        "golden.tree.restored", (digest or "")[:16], threshold=(handle["digest"] or "")[:16],
        source="sha256 of tests/golden", detail=handle.get("archive") or (
            "killed before its golden backup was recorded: restore the newest golden backup by hand "
            "(mobius golden restore latest)" if handle.get("had") else "there were no goldens")))
    return report


class GoldenApproveParams(StepParams):
    games: list[str] | None = None  # game slugs; default: every game in games/
    per_os: bool | None = None
    frames: list[float] | None = None  # frame times in seconds
    executor: str | None = None  # local or dask; default: the settings' choice


@register_step("golden.approve")
class GoldenApproveStep:
    """`mobius golden approve` / `golden update`: the call backs up the goldens, renders, regenerates
    (mobius.approval); undo = its golden backup restored (none before: none left), proved by the tree digest."""

    name: ClassVar[str] = "golden.approve"
    Params: ClassVar[type[StepParams]] = GoldenApproveParams
    probes: ClassVar[tuple[str, ...]] = ("golden_check",)

    def __init__(self, params: dict[str, Any]):
        checked = GoldenApproveParams.model_validate(params)
        self.games, self.per_os, self.frames, self.executor = (checked.games, checked.per_os, checked.frames,
                                                               checked.executor)

    def plan(self, ctx: StepContext) -> StepPlan:
        return StepPlan(f"render and regenerate the goldens of {', '.join(self.games or ['every game'])}")

    def preflight(self, ctx: StepContext) -> Report:
        return Report("golden.approve preflight", [skipped("golden.approve.checks", "checked by mobius golden "
                                                           "approve itself (the pipeline test first)")])

    def apply(self, ctx: StepContext) -> Any:
        from mobius.approval import approve
        from mobius.golden.archive import has_goldens

        handle = dict(ctx.undo or {})
        if not handle:
            handle = {"digest": tree_digest(ctx.ws.golden), "had": has_goldens(ctx.ws), "archive": None}
            ctx.record_undo(handle)
        elif tree_digest(ctx.ws.golden) != handle["digest"] and not handle.get("archive"):
            raise VerificationError("golden approve was killed after it changed tests/golden but before its golden "
                                    "backup was recorded: it cannot be resumed safely",
                                    hint="restore the newest golden backup (mobius golden restore latest), then "
                                         "approve again")
        result = approve(ctx.ws, self.games, per_os=self.per_os, frames=self.frames, executor=self.executor,
                         progress=ctx.progress)
        handle["archive"] = str(result.backup) if result.backup else handle.get("archive")
        handle["games"] = [g.game for g in result.games]
        ctx.record_undo(handle)  # its backup, for the undo, from now on
        return handle

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        from mobius.golden.baseline import baseline_folder, per_os_enabled

        report = Report("golden.approve verify")
        for game in handle.get("games", []):
            folder = baseline_folder(ctx.ws, game, per_os=per_os_enabled(ctx.ws, self.per_os))
            report.add((passed if folder.is_dir() else failed)(f"golden.{game}", str(folder), source="tests/golden"))
        return report

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        return _put_back(ctx, handle, "golden.approve rollback")


class GoldenRestoreParams(StepParams):
    archive: str = Field(min_length=1)  # a golden_*.tar.zst archive (absolute path), or `latest`


@register_step("golden.restore")
class GoldenRestoreStep:
    """`mobius golden restore ARCHIVE`: the archive verified and its tree put back as tests/golden, the goldens it
    replaces backed up first (mobius.golden); undo = that backup restored, proved by the tree digest."""

    name: ClassVar[str] = "golden.restore"
    Params: ClassVar[type[StepParams]] = GoldenRestoreParams
    probes: ClassVar[tuple[str, ...]] = ("golden_check",)

    def __init__(self, params: dict[str, Any]):
        self.archive = GoldenRestoreParams.model_validate(params).archive

    def plan(self, ctx: StepContext) -> StepPlan:
        return StepPlan(f"put {self.archive} back as {ctx.ws.golden}")

    def preflight(self, ctx: StepContext) -> Report:
        return Report("golden.restore preflight", [skipped("golden.restore.checks", "checked by mobius golden "
                                                           "restore itself (the archive verified first)")])

    def apply(self, ctx: StepContext) -> Any:
        from mobius.golden.archive import LATEST, has_goldens, latest_golden_backup, restore_goldens

        handle = dict(ctx.undo or {})
        if not handle:
            # `latest` now: a resume must not take the backup the killed run made of the goldens it replaced
            source = str(latest_golden_backup(ctx.ws)) if self.archive == LATEST else self.archive
            handle = {"digest": tree_digest(ctx.ws.golden), "had": has_goldens(ctx.ws), "archive": None,
                      "source": source}
            ctx.record_undo(handle)
        elif tree_digest(ctx.ws.golden) != handle["digest"] and not handle.get("archive"):
            raise VerificationError("golden restore was killed after it changed tests/golden but before the backup "
                                    "of the goldens it replaced was recorded: it cannot be resumed safely",
                                    hint="restore the newest golden backup by hand (mobius golden restore latest)")
        result = restore_goldens(ctx.ws, handle["source"], progress=ctx.progress)
        previous = result.get("previous_goldens_backup")
        handle["archive"] = str(previous) if previous else handle.get("archive")
        handle["restored"] = str(result.get("archive"))
        handle["after"] = tree_digest(ctx.ws.golden)
        ctx.record_undo(handle)  # the backup of the goldens it replaced, for the undo, from now on
        return handle

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        digest = tree_digest(ctx.ws.golden)
        return Report("golden.restore verify", [(passed if digest == handle.get("after") else failed)(
            "golden.tree.restored", (digest or "")[:16], threshold=(handle.get("after") or "")[:16],
            source="sha256 of tests/golden", detail=handle.get("restored"))])

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        return _put_back(ctx, handle, "golden.restore rollback")
