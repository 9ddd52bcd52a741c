"""`mobius media`: see mobius.media."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from mobius.cli.context import current
from mobius.cli.options import DRY_RUN, EXECUTOR, WORKERS, YES, changes
from mobius.cli.output import confirm, emit, say
from mobius.safety.stamps import utc_compact

media_app = typer.Typer(help="Media library: manifests, verification, verified migration to a folder or s3://.",
                        no_args_is_help=True)


def _folder(directory: Path | None) -> Path:
    """A folder given on the command line is relative to the current directory, like any CLI path."""
    return Path(os.path.abspath(directory.expanduser())) if directory else current.workspace().library_path


def _target(value: str) -> str:
    """The --to value as the MOBIUS_LIBRARY_DIR it will become (media.migrate refuses one `.env` cannot hold)."""
    from mobius.config import is_url

    return value if is_url(value) else os.path.abspath(os.path.expanduser(value))


def _ratio(value: float) -> float:
    import math

    from mobius.errors import InputError

    if not math.isfinite(value) or value < 0:
        raise InputError(f"--min-free-ratio must be a finite number >= 0, not {value}", hint="e.g. --min-free-ratio 3")
    return value


@media_app.command("manifest")
@changes
def manifest_command(
    directory: Path = typer.Argument(None, help="Folder to hash (default: the workspace library)"),
    out: Path = typer.Option(None, "--out", "-o", help="Manifest file (default: state/media/manifests/...)"),
    workers: int = WORKERS,
    executor: str = EXECUTOR,
) -> None:
    """Write a sha256 manifest of every file, in sha256sum format (check it with `sha256sum -c`).

    Example: mobius media manifest uploads --out uploads.sha256 && (cd uploads && sha256sum -c ../uploads.sha256)
    """
    from mobius.media import build_manifest, hash_cache

    ws = current.workspace()
    folder = _folder(directory)
    stamp = utc_compact()
    out = Path(out).resolve() if out else ws.state / "media" / "manifests" / f"{folder.name}-{stamp}.sha256"
    result = build_manifest(folder, out, workers=workers, progress=current.progress(), cache=hash_cache(ws),
                            ws=ws, executor=executor)
    lines = [f"manifest {result.manifest}: {result.files} files, {result.bytes} bytes from {result.folder}",
             f"check it with: cd {result.folder} && sha256sum -c {result.manifest}"]
    if result.unreadable:
        from mobius.errors import VerificationError

        raise VerificationError(f"{len(result.unreadable)} files could not be read (left out of {result.manifest})",
                                hint="fix their permissions and run again", details=result.unreadable)
    emit(result.to_dict(), lines)


@media_app.command("verify")
def verify_command(
    directory: Path = typer.Argument(None, help="Folder to check (default: the workspace library)"),
    against: Path = typer.Option(..., "--against", help="Manifest (sha256sum format) to compare with"),
    trust_cache: bool = typer.Option(False, "--trust-cache",
                                     help="Reuse cached hashes of files whose size, mtime and inode are unchanged"),
    workers: int = WORKERS,
    executor: str = EXECUTOR,
) -> None:
    """Report missing, extra, changed and unreadable files; exit 2 on any difference.

    Example: mobius media verify uploads --against uploads.sha256 --trust-cache
    Needs first: mobius media manifest uploads --out uploads.sha256
    """
    from mobius.media import hash_cache, verify_against

    ws = current.workspace()
    result = verify_against(_folder(directory), _folder(against), trust_cache=trust_cache, workers=workers,
                            progress=current.progress(), cache=hash_cache(ws), ws=ws,
                            executor=executor)
    if trust_cache:
        say(f"trusted {result.trusted} cached hashes (size, mtime and inode unchanged); hashed {result.hashed} files")
    result.raise_if_failed()
    emit(result.to_dict(), f"verified {result.checked} files in {result.folder} against {result.manifest}: all match")


@media_app.command("migrate")
@changes
def migrate_command(
    to: str = typer.Option(..., "--to", help="Target: a folder (new or empty) or s3://bucket/prefix"),
    dry_run: bool = DRY_RUN,
    no_backup: bool = typer.Option(False, "--no-backup", help="Skip the backup (recorded, and warned in the log)"),
    yes: bool = YES,
    workers: int = WORKERS,
    min_free_ratio: float = typer.Option(3.0, "--min-free-ratio", help="Free space needed at the target, "
                                         "as a multiple of the data to copy"),
    verify: bool = typer.Option(False, "--verify", help="Re-run of a completed migration: re-read every byte of "
                                "both trees (default: compare their stats, ctime included, and hash only what "
                                "a stat cannot clear)"),
) -> None:
    """Copy the library to TARGET, re-read and verify every byte, then switch MOBIUS_LIBRARY_DIR.

    Resumable: killed at any point, run the same command again. The source is never modified.

    Example: mobius media migrate --to media-v2 --yes
    """
    from mobius.media import migrate
    from mobius.ops.plain import run_step
    from mobius.safety.diskspace import human_bytes

    target, ratio = _target(to), _ratio(min_free_ratio)
    ws = current.workspace()
    if dry_run:  # changes nothing: no operation
        result = migrate(ws, target, dry_run=True, backup=not no_backup, workers=workers, min_free_ratio=ratio,
                         report=say, progress=current.progress())
    else:
        result = run_step(ws, "media.migrate", "media.migrate", {"to": target, "backup": not no_backup,
                                                                 "min_free_ratio": ratio, "verify": verify},
                          say=say, confirm=lambda question: confirm(question, yes=yes), progress=current.progress(),
                          workers=workers, continue_killed=True)
    if not result.dry_run and not result.nothing_to_do:
        current.set_workspace(ws.reload())
    record = result.record
    if result.dry_run:
        line = f"dry run: {result.planned_files} files ({human_bytes(result.planned_bytes)}) would be copied"
    elif result.nothing_to_do:
        line = f"nothing to do: the library already is {result.target} (migration {record.id})"
    else:
        line = (f"migration {record.id} completed: {record.files} files, {human_bytes(record.bytes)} at "
                f"{record.target} in {record.duration_s:.1f} s; MOBIUS_LIBRARY_DIR switched "
                f"(undo: mobius media rollback {record.id})")
    emit(result.to_dict(), line)


@media_app.command("migrations")
def migrations_command() -> None:
    """List the workspace's media migrations (id, status, files, bytes, duration, source -> target, backup).

    Example: mobius media migrations --json
    """
    from mobius.media import list_migrations
    from mobius.media.migrate import as_lines

    records = list_migrations(current.workspace())
    emit({"migrations": [r.to_dict() for r in records]}, as_lines(records) or ["no media migrations yet"])


@media_app.command("rollback")
@changes
def rollback_command(
    migration_id: str = typer.Argument(None, help="Migration id or latest (default: the latest completed one)"),
    workers: int = WORKERS,
) -> None:
    """Verify the old library against its manifest, then switch MOBIUS_LIBRARY_DIR back to it.

    Example: mobius media rollback latest
    Needs first: mobius media migrate --to media-v2 --yes
    """
    from mobius.ops.plain import run_step

    ws = current.workspace()
    result = run_step(ws, "media.rollback", "media.rollback", {"migration": migration_id}, say=say,
                      progress=current.progress(), workers=workers)
    current.set_workspace(ws.reload())
    emit(result.to_dict(), f"rolled back migration {result.record.id}: the library is {result.record.source} again")


@media_app.command("finalize")
@changes
def finalize_command(
    migration_id: str = typer.Argument(..., help="Migration id (see mobius media migrations), or latest: the latest "
                                                 "completed one"),
    yes: bool = YES,
    workers: int = WORKERS,
) -> None:
    """Re-verify the target against its manifest, then (confirmed) delete the old library.

    Example: mobius media finalize latest --yes
    Needs first: mobius media migrate --to media-v2 --yes
    """
    from mobius.ops.plain import run_step

    result = run_step(current.workspace(), "media.finalize", "media.finalize", {"migration": migration_id}, say=say,
                      confirm=lambda question: confirm(question, yes=yes), progress=current.progress(),
                      workers=workers)
    emit(result.to_dict(), f"finalized migration {result.record.id}: removed {result.removed}")


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app."""
    app.add_typer(media_app, name="media")
