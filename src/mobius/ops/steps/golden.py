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
        from mobius.golden.archive import restore_goldens

        report = Report("golden.update rollback")
        if not handle:
            report.add(skipped("golden.undo", "the step never started"))
            return report
        if tree_digest(ctx.ws.golden) != handle["digest"]:
            if handle.get("archive"):
                restore_goldens(ctx.ws, Path(handle["archive"]), progress=ctx.progress)
            else:
                empty = Path(tempfile.mkdtemp(prefix=".mobius-tmp-golden-", dir=ctx.ws.golden.parent))
                aside = swap_folder(empty, ctx.ws.golden)
                if aside is not None:
                    shutil.rmtree(aside, ignore_errors=True)
        digest = tree_digest(ctx.ws.golden)
        report.add((passed if digest == handle["digest"] else failed)(
            "golden.tree.restored", (digest or "")[:16], threshold=(handle["digest"] or "")[:16],
            source="sha256 of tests/golden", detail=handle.get("archive") or "there were no goldens"))
        return report
