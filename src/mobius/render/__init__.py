"""Tutorial previews: game specs -> shot list -> MP4 (PyAV), and the pipeline's self-test.

Public functions (each takes a Workspace):
- `load_game(ws, game) -> GameSpec`
- `render_game(ws, game, out=None, *, progress=None) -> RenderResult`
- `pipeline_test(ws, games=None, *, progress=None) -> PipelineReport`
- `write_sample_specs(games_dir) -> list[Path]`
"""

from __future__ import annotations

from pathlib import Path

from mobius.config import Workspace
from mobius.progress import Progress
from mobius.render.pipeline import PipelineReport, pipeline_test
from mobius.render.samples import write_sample_specs
from mobius.render.spec import GameSpec, load_spec, spec_path

__all__ = ["GameSpec", "PipelineReport", "default_output", "load_game", "pipeline_test", "render_game",
           "write_sample_specs"]


def load_game(ws: Workspace, game: str) -> GameSpec:
    """The validated spec of `game` (a slug, or a path to a .yaml file)."""
    return load_spec(spec_path(ws.games, game))


def default_output(ws: Workspace, slug: str) -> Path:
    return ws.out / slug / "preview.mp4"


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
