"""Tutorial previews: game specs -> shot list -> MP4 (PyAV), and the pipeline's self-test.

Public functions (each takes a Workspace):
- `load_game(ws, game) -> GameSpec`
- `render_game(ws, game, out=None, *, progress=None) -> RenderResult`
- `render_games(ws, games, *, executor=None, progress=None) -> Run` (several games through mobius.executor)
- `pipeline_test(ws, games=None, *, executor=None, progress=None) -> PipelineReport`
"""

from __future__ import annotations

from pathlib import Path

from mobius.config import Workspace
from mobius.games import default_output
from mobius.progress import Progress
from mobius.render.pipeline import PipelineReport, pipeline_test
from mobius.render.spec import GameSpec, load_spec, spec_path

__all__ = ["GameSpec", "PipelineReport", "default_output", "game_key", "load_game", "pipeline_test", "render_game",
           "render_games"]  # the sample specs are mobius.workspace.sample_specs


def load_game(ws: Workspace, game: str) -> GameSpec:
    """The validated spec of `game` (a slug, or a path to a .yaml file)."""
    return load_spec(spec_path(ws.games, game))


def render_game(ws: Workspace, game: str, out: Path | None = None, *, progress: Progress | None = None):
    """Render `game`'s tutorial preview (default out/<slug>/preview.mp4); returns a RenderResult.

    A relative `out` is relative to the current directory, like every file named on a command line.
    """
    from mobius.errors import InputError
    from mobius.render.preview import render_preview
    from mobius.render.shots import compile_shots, missing_assets

    spec = load_game(ws, game)
    shots = compile_shots(spec, ws.library_path)
    missing = missing_assets(shots)
    if missing:
        raise InputError(f"render {spec.slug}: {len(missing)} component image(s) missing from the library",
                         hint="fix the spec's image paths or restore the library; `mobius pipeline test` lists them",
                         details=[f"{a.component_id}: {a.path}" for a in missing])
    target = Path(out).expanduser().resolve() if out is not None else default_output(ws, spec.slug)
    return render_preview(shots, target, color=spec.color, progress=progress)


def game_key(game: str) -> str:
    """The slug a command-line game names (a slug, or a path to games/<slug>.yaml)."""
    return Path(game).stem if game.endswith((".yaml", ".yml")) else game


def render_task(ws: Workspace, job: tuple[str, str | None]):
    """One executor item: render (game, out) on whichever worker it lands; idempotent (same bytes, same name)."""
    game, out = job
    return render_game(ws, game, Path(out) if out else None)


def render_games(ws: Workspace, games: list[str], *, outs: dict[str, Path] | None = None, executor=None,
                 progress: Progress | None = None):
    """Render several games through the executor (local pool or Dask); returns the executor's Run.

    Every worker must reach the library, the specs and out/ (probed). Failed games are named by
    `Run.raise_if_failed`; the games that finished keep their previews.
    """
    from mobius.executor import Item, run_items, using

    outs = outs or {}
    jobs = [Item(game_key(g), (g, str(outs[g]) if g in outs else None)) for g in games]
    targets = [Path(outs[g]).expanduser().resolve() if g in outs else default_output(ws, game_key(g)) for g in games]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    with using(ws, executor) as chosen:
        return run_items(ws, "render", render_task, jobs, executor=chosen,
                         reach=[ws.out, ws.games, ws.library_path, *{t.parent for t in targets}],
                         sweep={t.parent for t in targets}, progress=progress)
