"""check-all: every game with goldens held to its rendered preview, one executor item per game.

(Approving renders as goldens needs the renderer too, so it lives above both: mobius.approval.)
"""

from __future__ import annotations

from pathlib import Path

from mobius.config import Workspace
from mobius.errors import InputError
from mobius.games import default_output
from mobius.golden.baseline import debug_folder, games_with_goldens, per_os_enabled
from mobius.golden.check import GoldenVerdict, check_video
from mobius.progress import Progress


def check_task(ws: Workspace, job: tuple[str, str, dict[str, float | None] | None, bool]) -> GoldenVerdict:
    """One executor item: hold one game's preview to its goldens (wherever the item lands)."""
    game, video, overrides, per_os = job
    return check_video(ws, game, Path(video), overrides=overrides, per_os=per_os)


def check_all(ws: Workspace, *, overrides: dict[str, float | None] | None = None, per_os: bool | None = None,
              videos: dict[str, Path] | None = None, executor=None, progress: Progress | None = None
              ) -> list[GoldenVerdict]:
    """Check every game that has goldens against its rendered preview (out/<slug>/preview.mp4), one
    executor item per game. A failed check is in its report; a game that could not be checked at all
    (no video) raises, naming it."""
    from mobius.executor import Item, run_items, using

    games = games_with_goldens(ws)
    if not games:
        raise InputError(f"no goldens in {ws.golden}", hint="approve renders first: `mobius golden approve`")
    use_per_os = per_os_enabled(ws, per_os)
    jobs = [Item(game, (game, str((videos or {}).get(game) or default_output(ws, game)), overrides, use_per_os))
            for game in games]
    with using(ws, executor) as pool:
        run = run_items(ws, "golden check-all", check_task, jobs, executor=pool, reach=[ws.out, ws.golden],
                        sweep=[debug_folder(ws, g) for g in games], progress=progress)
    run.raise_if_failed()
    return run.values()
