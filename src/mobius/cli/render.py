"""`mobius render GAME` and `mobius pipeline test`: see mobius.render."""

from __future__ import annotations

from pathlib import Path

import typer

pipeline_app = typer.Typer(help="The rendering pipeline's self-test (the runbook's test-pipeline).",
                           no_args_is_help=True)


def render_command(
    game: str = typer.Argument(..., help="Game slug (games/<slug>.yaml) or a path to a spec."),
    out: Path = typer.Option(None, "--out", "-o", help="Output MP4 (default: out/<slug>/preview.mp4)."),
) -> None:
    """Render a game's tutorial preview: H.264 960x540 30 fps, AAC stereo at -16 LUFS.

    Example: mobius render sushi-go --out out/sushi-go/preview.mp4
    """
    import time

    from mobius.cli.context import current
    from mobius.cli.output import emit
    from mobius.render import render_game

    ws = current.workspace()
    started = time.monotonic()
    result = render_game(ws, game, out, progress=current.progress())
    elapsed = time.monotonic() - started
    emit({**result.to_dict(), "render_seconds": round(elapsed, 2)},
         [f"rendered {result.game}: {result.path}",
          f"  {result.width}x{result.height} {result.fps} fps, {result.seconds:g} s, {result.frames} frames, "
          f"{result.integrated_lufs:g} LUFS, true peak {result.true_peak_dbtp:g} dBTP",
          f"  took {elapsed:.1f} s ({elapsed / result.seconds:.2f}x the video's duration)"])


@pipeline_app.command("test")
def pipeline_test_command(
    games: list[str] = typer.Argument(None, help="Games to test (default: every spec in games/)."),
) -> None:
    """Compile every spec's shot list, check its assets, render and probe a 2 s proxy; exit 2 naming failures.

    Example: mobius pipeline test
    """
    from mobius.cli.context import current
    from mobius.cli.output import emit, say
    from mobius.errors import InputError, VerificationError
    from mobius.render import pipeline_test

    ws = current.workspace()
    report = pipeline_test(ws, games or None, progress=current.progress())
    if not report.games:
        raise InputError(f"no game specs in {ws.games}", hint="add games/<slug>.yaml or run `mobius init --sample`")
    for game in report.games:
        say(f"{'ok  ' if game.passed else 'FAIL'} {game.game}: {game.shots} shots, {game.assets} assets"
            + ("" if game.passed else f", {len(game.problems)} problem(s)"))
    if not report.passed:
        failures = report.failures()
        raise VerificationError(f"pipeline test: {len(failures)} problem(s): {failures[0]}",
                                hint="fix the specs or the library, then run `mobius pipeline test` again",
                                details=failures)
    emit(report.to_dict(), f"pipeline test passed for {len(report.games)} game(s)")


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app."""
    app.command("render")(render_command)
    app.add_typer(pipeline_app, name="pipeline")
