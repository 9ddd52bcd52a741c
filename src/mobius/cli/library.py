"""`mobius library`: image fingerprints; see mobius.fingerprint."""

from __future__ import annotations

from pathlib import Path

import typer

from mobius.cli.context import current
from mobius.cli.options import EXECUTOR, WORKERS, changes
from mobius.cli.output import emit, say
from mobius.results import to_jsonable

library_app = typer.Typer(help="Image fingerprints (dHash): hash the library, find duplicates and similar images, "
                               "migrate the hash version.", no_args_is_help=True)

DISTANCE = typer.Option(6, "--distance", "-d", help="Largest Hamming distance (bits of 64) that counts as similar.")
VARIANTS = typer.Option(False, "--variants", help="Also match flipped and rotated copies (8 hashes per image).")


def _fingerprint():  # noqa: ANN202
    """The fingerprint library, imported when a library command runs (keeps start-up light)."""
    from mobius import fingerprint

    return fingerprint


@library_app.command("hash")
@changes
def hash_command(mode: str = typer.Option("exact", "--mode", help="exact (ImageHash's dhash) or fast (JPEG draft)."),
                 workers: int = WORKERS, variants: bool = VARIANTS, executor: str = EXECUTOR) -> None:
    """Hash new and changed images of the library (incremental; failures are recorded with their reason).

    Example: mobius library hash --mode exact --workers 2
    """
    if mode not in ("exact", "fast"):
        from mobius.errors import InputError

        raise InputError(f"--mode {mode!r} is not exact or fast", hint="for other versions use library rehash --to")
    from mobius.ops.plain import run_step

    report = run_step(current.workspace(), "library.hash", "library.hash",
                      {"mode": mode, "variants": variants, "executor": executor}, say=say,
                      progress=current.progress(), workers=workers)
    lines = [f"hashed   {report.hashed} of {report.images} images with {report.algorithm} "
             f"({report.unchanged} unchanged, {report.removed} removed) in {report.seconds:.2f} s",
             f"failed   {report.failed}", f"active   {report.active}"]
    lines += [f"  {f['path']}: {f['error']}" for f in report.failures]
    emit(report, lines)


@library_app.command("dupes")
def dupes_command(distance: int = DISTANCE, variants: bool = VARIANTS,
                  fmt: str = typer.Option("table", "--format", help="table, json or html."),
                  out: Path = typer.Option(None, "--out", "-o", help="HTML file (default: out/dupes.html).")) -> None:
    """Exact and near-duplicate groups among the library's images (active hash version).

    Example: mobius library dupes --distance 6 --format html -o out/dupes.html
    Needs first: mobius library hash
    """
    if fmt not in ("table", "json", "html"):
        from mobius.errors import InputError

        raise InputError(f"--format {fmt!r} is not table, json or html", hint="e.g. --format html")
    ws = current.workspace()
    result = _fingerprint().find_duplicates(ws, distance=distance, variants=variants)
    payload = to_jsonable(result)
    if fmt == "html":
        from mobius.fingerprint.report import write_report

        payload["report"] = str(write_report(result, ws.library_path, (out or ws.out / "dupes.html").absolute()))
    if fmt == "json":
        import json

        emit(payload, json.dumps(payload, ensure_ascii=False, indent=1).splitlines())
        return
    lines = [f"{len(result.groups)} group(s), {result.duplicates} extra copies among {result.images} "
             f"images ({result.algorithm}, distance <= {distance})"]
    for number, group in enumerate(result.groups, 1):
        lines.append(f"group {number} ({group.kind}):")
        lines += [f"  {m.hash}  d={m.distance:<2} {m.path}"
                  + (f"  (same bytes as {m.copy_of})" if m.copy_of else "") for m in group.members]
    if fmt == "html":
        lines.append(f"report   {payload['report']}")
    emit(payload, lines)


@library_app.command("similar")
def similar_command(image: Path = typer.Argument(..., help="The image to look for."), distance: int = DISTANCE,
                    variants: bool = VARIANTS,
                    fmt: str = typer.Option("table", "--format", help="table or json.")) -> None:
    """Print IMAGE's hash (hex, as ImageHash writes it) and every library image within the distance.

    Example: mobius library similar uploads/sushi-go/cards/dumpling.png --distance 8
    Needs first: mobius library hash
    """
    result = _fingerprint().find_similar(current.workspace(), image, distance=distance, variants=variants)
    if fmt == "json":
        import json

        emit(result, json.dumps(to_jsonable(result), ensure_ascii=False, indent=1).splitlines())
        return
    lines = [f"{result.hash}  {image}  ({result.algorithm})"]
    lines += [f"  d={m.distance:<2} {m.hash}  {m.path}" for m in result.matches]
    lines.append(f"{len(result.matches)} match(es) within {distance}")
    emit(result, lines)


@library_app.command("rehash")
@changes
def rehash_command(to: str = typer.Option(None, "--to", help="Version to migrate to: exact, fast or an id."),
                   rollback: bool = typer.Option(False, "--rollback", help="Switch back to the previous version."),
                   no_switch: bool = typer.Option(False, "--no-switch", help="Compute and compare only."),
                   distance: int = DISTANCE, workers: int = WORKERS, executor: str = EXECUTOR) -> None:
    """Migrate the hash version: compute beside the old one, compare, switch atomically; --rollback undoes it.

    Example: mobius library rehash --to fast
    Example: mobius library rehash --rollback
    Needs first: mobius library hash
    """
    from mobius.errors import InputError

    ws = current.workspace()
    if rollback == bool(to):
        raise InputError("give exactly one of --to VERSION or --rollback", hint="e.g. mobius library rehash --to fast")
    from mobius.ops.plain import run_step

    if rollback:
        switch = run_step(ws, "library.rehash-rollback", "library.rehash-rollback", {}, say=say)
        emit(switch, f"active   {switch.new} (was {switch.old}); nothing recomputed")
        return

    result = run_step(ws, "library.rehash", "library.rehash", {"to": to, "distance": distance,
                                                                "switch": not no_switch, "executor": executor},
                      say=say, progress=current.progress(), workers=workers)
    c = result.comparison
    say(f"computed {result.hash.hashed} new hashes ({result.hash.unchanged} already there)")
    lines = [f"compared {c.images} images {c.old} -> {c.new}: {c.identical} identical, "
             f"{c.bits_changed_mean} bits changed on average",
             "histogram " + " ".join(f"{k}:{v}" for k, v in c.histogram.items()),
             f"groups   {c.group_changes} image(s) change duplicate group at distance {c.distance} "
             f"(pairs {c.grouped_pairs_old} -> {c.grouped_pairs_new})",
             f"active   {result.new if result.switched else result.old}"
             + ("" if result.switched else " (not switched)")]
    emit(result, lines)


@library_app.command("metrics")
def metrics_command() -> None:
    """Hash time p50/p95 and the extraction failure rate of the active version (what /metrics/dhash serves).

    Example: mobius library metrics --json
    """
    m = _fingerprint().metrics(current.workspace())
    emit(m, [f"{k:<13}{v}" for k, v in to_jsonable(m).items()])


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app."""
    app.add_typer(library_app, name="library")
