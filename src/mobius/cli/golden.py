"""`mobius golden ...`: see mobius.golden."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from mobius.cli.options import EXECUTOR as _EXECUTOR
from mobius.cli.options import changes

# No golden command multiplies matrices, so OpenBLAS needs no threads of its own; started, they spin while
# numpy loads: 0.05-0.08 s of CPU a `golden check` (numpy's import 0.10 -> 0.05 s CPU on 2 cores, measured;
# docs/golden.md, Speed). Read once, when numpy first loads, which is after this module in every golden
# command; a value the user set stays.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

golden_app = typer.Typer(help="Golden files: pin a preview's every frame, soundtrack, loudness and container; "
                              "check renders against them.", no_args_is_help=True)

_SSIM = typer.Option(None, "--ssim", help="Minimum luma SSIM per frame (default: golden.json, else 0.995).")
_LUFS = typer.Option(None, "--lufs-tol", help="Max integrated loudness deviation in LU (default 1.0).")
_TP = typer.Option(None, "--tp-tol", help="Max true-peak deviation in dB (default 1.0).")
_FRAME_DIFF = typer.Option(None, "--frame-diff", help="Max difference of any frame's most-changed 1 % in 8-bit levels "
                                                       "(default: golden.json, else 12).")
_AUDIO_DIFF = typer.Option(None, "--audio-diff", help="Max mean band level difference per 100 ms of audio in dB "
                                                       "(default: golden.json, else 10).")
_JUNIT = typer.Option(None, "--junit", help="Write JUnit XML here (one test case per check).")
_HTML = typer.Option(None, "--html", help="Write an HTML report here (golden/current/diff side by side).")
_FRAMES = typer.Option(None, "--frames", help="Frame times in seconds (default: the old golden's, else 5,10,20).")
_PER_OS = typer.Option(False, "--per-os", help="Use tests/golden/<slug>/<os>/ (also MOBIUS_GOLDEN_PER_OS=1).")


def _path(value: Path) -> Path:
    """A file named on the command line: relative to the current directory, like any CLI."""
    return Path(value).expanduser().resolve()


def _frames(value: str | None) -> list[float] | None:
    import math

    from mobius.errors import InputError

    if not value:
        return None
    try:
        times = [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--frames {value!r} is not a list of seconds", hint="e.g. --frames 5,10,20") from None
    if not times or any(not math.isfinite(t) or t < 0 for t in times):
        raise InputError(f"--frames {value!r} must list finite times >= 0", hint="e.g. --frames 5,10,20")
    return times


def _record(kind: str, reports, result: dict, *, passed: bool) -> None:
    """Keep the check in the record store (what `--json` prints), where the service's status page reads it: an
    operation of type `kind` through the one record path, `failed` when a check failed (the CLI exits 2).
    Its natural home is mobius.golden's check functions; it stays here until they record themselves."""
    from mobius.cli.context import current
    from mobius.records import records_call

    keep = records_call(lambda args: args["kind"], params=lambda args: {"games": args["games"]}, bound=None,
                        status=lambda out: "completed" if passed else "failed")(_checked)
    keep(current.workspace(), kind, [r.game for r in reports], result)


def _checked(ws, kind: str, games: list[str], result: dict) -> dict:  # noqa: ANN001
    """What the record of a golden check keeps: its result as `--json` prints it."""
    return result


def _finish(reports, junit: Path | None, html: Path | None, result: dict, *, kind: str) -> None:
    """Write the reports, record, print the lines; exit 2 (with the same JSON object) when a check failed.

    The command ends the process: what is alive then is frozen for the garbage collector (`gc.freeze`), so
    the interpreter's collections at exit do not walk numpy's, PyAV's and PIL's tens of thousands of objects
    once more (the exit of a check: median 40 -> 18 ms, measured). Nothing it skips writes: the reports and
    the record are written, fsynced and closed here before the process ends; objects are still freed by their
    reference counts, only cycles among them are left to the process's end (an in-process caller, such as a
    test, may `gc.unfreeze()`). Frozen whatever the exception, which passes on unchanged.
    """
    import gc

    try:
        _report_and_record(reports, junit, html, result, kind=kind)
    finally:
        gc.freeze()


def _report_and_record(reports, junit: Path | None, html: Path | None, result: dict, *, kind: str) -> None:
    from mobius.cli.context import current
    from mobius.cli.output import emit
    from mobius.errors import EXIT_VERIFY, VerificationError

    if junit or html:
        from mobius.golden.report import write_html, write_junit  # only when asked for: start-up of a plain check

        if junit:
            result["junit"] = write_junit(reports, _path(junit))
        if html:
            result["html"] = write_html(reports, _path(html))
    lines = [line for report in reports for line in report.lines()]
    lines += [f"JUnit: {result['junit']}"] if junit else []
    lines += [f"HTML report: {result['html']}"] if html else []
    failed = [f"{r.game}: {c.line().strip()}" for r in reports for c in r.failures]
    failed_names = [f"{r.game} {c.name}" for r in reports for c in r.failures]
    _record(kind, reports, result, passed=not failed)
    if not failed:
        emit(result, lines)
        return
    message = f"golden check: {len(failed)} check(s) failed in {sum(not r.passed for r in reports)} game(s)"
    if current.json:
        emit({**result, "ok": False, "exit_code": EXIT_VERIFY, "error": message})
        raise typer.Exit(EXIT_VERIFY)
    emit({}, lines)
    raise VerificationError(f"{message}: {', '.join(failed_names)}",
                            hint="see the lines above; heat maps of failed frames are in tests/golden/<slug>/debug/")


@golden_app.command("generate")
@changes
def generate_command(
    game: str = typer.Option(..., "--game", "-g", help="Game slug."),
    video: Path = typer.Option(..., "--in", "-i", help="The approved video (MP4)."),
    frames: str = _FRAMES,
    per_os: bool = _PER_OS,
) -> None:
    """Write tests/golden/<slug>/ from a video: frames, signatures.npz, audio_stats.json, container.json,
    golden.json (atomic).

    Example: mobius golden generate --game sushi-go --in out/sushi-go/preview.mp4 --frames 5,10,20

    Needs first: mobius render sushi-go
    """
    from mobius.cli.context import current
    from mobius.cli.output import emit
    from mobius.golden.baseline import generate, per_os_enabled

    ws = current.workspace()
    result = generate(ws, game, _path(video), frames=_frames(frames), per_os=per_os_enabled(ws, per_os),
                      progress=current.progress())
    emit(result.to_dict(), [f"goldens for {game} written to {result.folder}",
                            f"  frames {', '.join(f'{t:g} s' for t in result.frames)}; "
                            f"{result.audio['integrated_lufs']} LUFS, true peak {result.audio['true_peak_dbtp']} dBTP; "
                            f"{result.container['codec']} {result.container['width']}x{result.container['height']}"])


@golden_app.command("check")
def check_command(
    game: str = typer.Option(..., "--game", "-g", help="Game slug."),
    video: Path = typer.Option(..., "--in", "-i", help="The video to check (MP4)."),
    ssim: float = _SSIM, lufs_tol: float = _LUFS, tp_tol: float = _TP,
    frame_diff: float = _FRAME_DIFF, audio_diff: float = _AUDIO_DIFF,
    junit: Path = _JUNIT, html: Path = _HTML, per_os: bool = _PER_OS,
) -> None:
    """Hold a video to its goldens: every frame, timing, the soundtrack's content, pinned-frame SSIM, loudness,
    container. Exit 2 if any check fails.

    Example: mobius golden check --game sushi-go --in out/sushi-go/preview.mp4 --junit golden.xml --html golden.html

    Needs first: mobius golden approve sushi-go
    """
    from mobius.cli.context import current
    from mobius.golden.baseline import per_os_enabled
    from mobius.golden.check import check_video

    ws = current.workspace()
    report = check_video(ws, game, _path(video), overrides={"ssim": ssim, "lufs_tol": lufs_tol, "tp_tol": tp_tol,
                                                  "frame_diff": frame_diff, "audio_diff": audio_diff},
                         per_os=per_os_enabled(ws, per_os), progress=current.progress())
    _finish([report], junit, html, report.to_dict(), kind="golden.check")


@golden_app.command("check-all")
def check_all_command(
    ssim: float = _SSIM, lufs_tol: float = _LUFS, tp_tol: float = _TP,
    frame_diff: float = _FRAME_DIFF, audio_diff: float = _AUDIO_DIFF,
    junit: Path = _JUNIT, html: Path = _HTML, per_os: bool = _PER_OS, executor: str = _EXECUTOR,
) -> None:
    """Check every game that has goldens against out/<slug>/preview.mp4; one summary, one JUnit file.

    Example: mobius golden check-all --junit golden-all.xml

    Needs first: mobius golden approve sushi-go
    """
    from mobius.cli.context import current
    from mobius.golden.workflow import check_all

    ws = current.workspace()
    overrides = {"ssim": ssim, "lufs_tol": lufs_tol, "tp_tol": tp_tol, "frame_diff": frame_diff,
                 "audio_diff": audio_diff}
    reports = check_all(ws, overrides=overrides, per_os=per_os or None, executor=executor,
                        progress=current.progress())
    summary = {"passed": all(r.passed for r in reports), "games": [r.to_dict() for r in reports],
               "failed_games": [r.game for r in reports if not r.passed]}
    _finish(reports, junit, html, summary, kind="golden.check-all")


@golden_app.command("approve")
@changes
def approve_command(
    games: list[str] = typer.Argument(None, help="Games to approve (default: every spec in games/)."),
    frames: str = _FRAMES,
    per_os: bool = _PER_OS,
    executor: str = _EXECUTOR,
) -> None:
    """Back up the goldens, render each game, generate its goldens; refused if `pipeline test` fails.

    Example: mobius golden approve sushi-go love-letter
    """
    from mobius.cli.context import current
    from mobius.cli.output import emit, say
    from mobius.ops.plain import run_step

    ws = current.workspace()
    result = run_step(ws, "golden.approve", "golden.approve", {"games": games or None, "per_os": per_os or None,
                                                                "frames": _frames(frames), "executor": executor},
                      say=say, progress=current.progress())
    lines = [f"backed up the previous goldens to {result.backup}"] if result.backup else []
    lines += [f"approved {g.game}: {g.video} -> {g.folder}" for g in result.games]
    emit(result.to_dict(), lines)


@golden_app.command("update")
@changes
def update_command(
    game: str = typer.Argument(..., help="Game slug."),
    per_os: bool = _PER_OS,
) -> None:
    """Regenerate one game's goldens (the runbook's golden:update:<game>): back up, render, generate.

    Example: mobius golden update sushi-go
    """
    approve_command([game], None, per_os, None)


@golden_app.command("backup")
@changes
def backup_command() -> None:
    """Archive tests/golden into backups/golden_<UTC>.tar.zst with a .sha256 sidecar.

    Example: mobius golden backup

    Needs first: mobius golden approve sushi-go
    """
    from mobius.cli.context import current
    from mobius.cli.output import emit
    from mobius.golden.archive import backup_goldens

    result = backup_goldens(current.workspace(), progress=current.progress())
    emit({"archive": result.path, "sha256": result.sha256},
         [f"golden backup: {result.path}", f"  sha256 {result.sha256}"])


@golden_app.command("restore")
@changes
def restore_command(archive: str = typer.Argument(..., help="A golden_*.tar.zst archive, or `latest` (the newest "
                                                            "in the backups folder).")) -> None:
    """Verify a golden archive and put its tree back as tests/golden (the current goldens are backed up first).

    Example: mobius golden restore latest

    Needs first: mobius golden approve sushi-go && mobius golden backup
    """
    from mobius.cli.context import current
    from mobius.cli.output import emit, say
    from mobius.ops.plain import run_step

    ws = current.workspace()
    result = run_step(ws, "golden.restore", "golden.restore",
                      {"archive": archive if archive == "latest" else str(_path(Path(archive)))}, say=say,
                      progress=current.progress())
    lines = [f"restored {result['archive']} into {result['restored_to']} ({', '.join(result['games']) or 'empty'})"]
    if result["previous_goldens_backup"]:
        lines.append(f"  the goldens it replaced are in {result['previous_goldens_backup']}")
    emit(result, lines)


@golden_app.command("upgrade")
@changes
def upgrade_command(
    games: list[str] = typer.Argument(None, help="Games to upgrade (default: every game with goldens)."),
) -> None:
    """Add the signatures of every frame and of the soundtrack (format 2) to older goldens, from the video
    they were made from, without changing what they pin; says why when it cannot (exit 1).

    Example: mobius golden upgrade sushi-go

    Needs first: mobius golden approve sushi-go
    """
    from mobius.cli.context import current
    from mobius.cli.output import emit
    from mobius.errors import InputError
    from mobius.golden.format_upgrade import upgrade

    results = upgrade(current.workspace(), games or None, progress=current.progress())
    refused = [r for r in results if r.status == "refused"]
    if refused:
        raise InputError(f"golden upgrade: {len(refused)} of {len(results)} baseline(s) not upgraded: "
                         + "; ".join(f"{r.game}: {r.reason}" for r in refused),
                         hint="re-approve those games (`mobius golden update GAME`); the others were upgraded",
                         details=[f"{r.game}: {r.status}" for r in results])
    emit({"games": [r.to_dict() for r in results]},
         [f"{r.game}: {r.status}" + (f" from {r.source}" if r.source else f" ({r.reason})" if r.reason else "")
          for r in results])


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app."""
    app.add_typer(golden_app, name="golden")
