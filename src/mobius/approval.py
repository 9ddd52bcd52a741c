"""Approving renders as the new goldens (`golden approve` / `update`, the migrate plan's golden.update).

The one workflow that needs both the renderer and the goldens, so it sits above both: render and
golden share their measurements through mobius.measure and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mobius.config import Workspace
from mobius.errors import InputError, VerificationError
from mobius.executor import using
from mobius.golden.archive import backup_goldens, has_goldens
from mobius.golden.baseline import GenerateResult, generate, per_os_enabled
from mobius.log import get_logger
from mobius.progress import Progress
from mobius.records import records_call
from mobius.render import pipeline_test, render_games
from mobius.render.pipeline import delivery_problems
from mobius.render.spec import list_specs


@dataclass
class ApproveResult:
    backup: Path | None = None
    games: list[GenerateResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"backup": self.backup, "games": [g.to_dict() for g in self.games]}


@records_call("golden.approve", ref=lambda result: result.backup)
def approve(ws: Workspace, games: list[str] | None = None, *, per_os: bool | None = None,
            frames: list[float] | None = None, executor=None, progress: Progress | None = None) -> ApproveResult:
    """Refuse unless `pipeline test` passes; back up the goldens; render every game; refuse unless every
    render meets the delivery format; then generate each game's goldens.

    The goldens are not touched when the pipeline test or a render fails. The pipeline test and the
    renders go through one executor (`executor`, else the settings' choice).
    """
    chosen = games or [p.stem for p in list_specs(ws.games)]
    if not chosen:
        raise InputError(f"no game specs in {ws.games}", hint="add games/<slug>.yaml or run `mobius init --sample`")
    with using(ws, executor) as pool:
        report = pipeline_test(ws, chosen, executor=pool, progress=progress)
        if not report.passed:
            failures = report.failures()
            raise VerificationError(f"golden approve refused: the pipeline test failed ({failures[0]})",
                                    hint="fix what `mobius pipeline test` names, then approve again", details=failures)
        result = ApproveResult()
        if has_goldens(ws):
            result.backup = backup_goldens(ws, progress=progress).path
        use_per_os = per_os_enabled(ws, per_os)
        run = render_games(ws, chosen, executor=pool, progress=progress)
    run.raise_if_failed()
    renders = run.values()
    problems = [p for r in renders for p in delivery_problems(r.path, seconds=r.seconds)]
    if problems:
        raise VerificationError(f"golden approve refused: a render misses the delivery format ({problems[0]})",
                                hint="fix the renderer; the goldens were not changed", details=problems)
    for rendered in renders:
        result.games.append(generate(ws, rendered.game, rendered.path, frames=frames, per_os=use_per_os,
                                     progress=progress))
    get_logger().info("golden.approved", games=chosen, backup=str(result.backup) if result.backup else None)
    return result
