"""`mobius render GAME` and `mobius pipeline test`: see mobius.render."""

from __future__ import annotations

from pathlib import Path

import typer

from mobius.cli.options import EXECUTOR, changes

pipeline_app = typer.Typer(help="The rendering pipeline's self-test (the runbook's test-pipeline).",
                           no_args_is_help=True)




@changes
def render_command(
    games: list[str] = typer.Argument(None, help="Game slugs (games/<slug>.yaml) or paths to specs."),
    all_games: bool = typer.Option(False, "--all", help="Render every spec in games/."),
    out: Path = typer.Option(None, "--out", "-o", help="Output MP4 of one game (default: out/<slug>/preview.mp4)."),
    executor: str = EXECUTOR,
) -> None:
    """Render tutorial previews: H.264 960x540 30 fps, AAC stereo at -16 LUFS; several games in parallel.

    Example: mobius render sushi-go --out out/sushi-go/preview.mp4
    Example: mobius render --all --executor dask
    """
    import time

    from mobius.cli.context import current
    from mobius.cli.output import emit
    from mobius.errors import InputError
    from mobius.render import render_game, render_games
    from mobius.render.spec import list_specs

    ws = current.workspace()
    chosen = [p.stem for p in list_specs(ws.games)] if all_games else list(games or [])
    if not chosen:
        raise InputError("name the games to render, or pass --all", hint="e.g. mobius render sushi-go love-letter")
    if out is not None and len(chosen) > 1:
        raise InputError("--out names the file of a single game", hint="drop --out; each game goes to out/<slug>/")
    started = time.monotonic()
    if len(chosen) == 1 and (executor or ws.settings.executor) == "local":
        result = render_game(ws, chosen[0], out, progress=current.progress())  # one game: no pool, live frames bar
    else:
        run = render_games(ws, chosen, outs={chosen[0]: out} if out is not None else None, executor=executor,
                           progress=current.progress())
        run.raise_if_failed()
        if len(chosen) > 1:
            elapsed = time.monotonic() - started
            emit({"executor": run.executor, "games": [r.to_dict() for r in run.values()],
                  "render_seconds": round(elapsed, 2)},
                 [f"rendered {r.game}: {r.path}" for r in run.values()]
                 + [f"  {len(chosen)} games in {elapsed:.1f} s on {run.executor}"])
            return
        result = run.values()[0]
    elapsed = time.monotonic() - started
    emit({**result.to_dict(), "render_seconds": round(elapsed, 2)},
         [f"rendered {result.game}: {result.path}",
          f"  {result.width}x{result.height} {result.fps} fps, {result.seconds:g} s, {result.frames} frames, "
          f"{result.integrated_lufs:g} LUFS, true peak {result.true_peak_dbtp:g} dBTP",
          f"  took {elapsed:.1f} s ({elapsed / result.seconds:.2f}x the video's duration)"])


@pipeline_app.command("test")
def pipeline_test_command(
    games: list[str] = typer.Argument(None, help="Games to test (default: every spec in games/)."),
    executor: str = EXECUTOR,
) -> None:
    """Compile every spec's shot list, check its assets, render and probe a 2 s proxy; exit 2 naming failures.

    Example: mobius pipeline test
    """
    from mobius.cli.context import current
    from mobius.cli.output import emit, say
    from mobius.errors import InputError
    from mobius.render import pipeline_test

    ws = current.workspace()
    report = pipeline_test(ws, games or None, executor=executor, progress=current.progress())
    if not report.games:
        raise InputError(f"no game specs in {ws.games}", hint="add games/<slug>.yaml or run `mobius init --sample`")
    for game in report.games:
        say(f"{'ok  ' if game.passed else 'FAIL'} {game.game}: {game.shots} shots, {game.assets} assets"
            + ("" if game.passed else f", {len(game.problems)} problem(s)"))
    report.raise_if_failed()
    emit(report.to_dict(), f"pipeline test passed for {len(report.games)} game(s)")


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app."""
    app.command("render")(render_command)
    app.add_typer(pipeline_app, name="pipeline")
