"""`mobius backup`: see mobius.backup."""

from __future__ import annotations

from pathlib import Path

import typer

from mobius.cli.context import current
from mobius.cli.output import confirm, emit, say
from mobius.safety.diskspace import human_bytes

backup_app = typer.Typer(help="Verified backups of the library: create, verify, restore, test-restore, list.",
                         no_args_is_help=True)


def _backup():  # noqa: ANN202
    """The backup library, imported when a backup command runs (keeps every other command's start-up light)."""
    from mobius import backup

    return backup


def _archive(name: str) -> Path:
    """An archive path, or a name in the workspace's backups/ (only then is a workspace needed)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    return _backup().resolve_archive(current.workspace(), name)


@backup_app.command("create")
def create(keep: int = typer.Option(None, "--keep", help="Backups to keep (default MOBIUS_BACKUP_KEEP, 5)."),
           database: bool = typer.Option(True, "--database/--no-database",
                                         help="Include a checked dump of the workspace database.")) -> None:
    """Archive the library, the workspace .env and a database dump into backups/, verify, then apply retention.

    Example: mobius backup create --keep 5
    """
    ws = current.workspace()
    say(f"backing up {ws.library} into {ws.backups}")
    result = _backup().create_backup(ws, keep=keep, database=database, progress=current.progress())
    lines = [f"archive  {result.path}",
             f"files    {result.files} ({human_bytes(result.bytes)}; archive {human_bytes(result.archive_bytes)}, "
             f"{result.compression})",
             f"sha256   {result.sha256}",
             f"verified yes ({result.verify_seconds:.1f} s); total {result.seconds:.1f} s"]
    lines += [f"deleted  {path.name} (retention)" for path in result.deleted]
    emit(result.to_dict(), lines)


@backup_app.command("verify")
def verify(
    archive: str = typer.Argument(..., help="Archive path, or its name in backups/"),
    deep: bool = typer.Option(False, "--deep", help="Check every member again even when the archive's bytes "
                              "are unchanged since its members were last checked"),
) -> None:
    """Check the archive against its .sha256 sidecar, then every member against the manifest (exit 2 if not).

    Every byte is read. An archive whose members all passed before and whose sha256 is unchanged since
    is not parsed again (same bytes, same result); --deep parses it anyway.

    Example: mobius backup verify backups/mobius_library_20261125T230000Z.tar.zst
    """
    report = _backup().verify_archive(_archive(archive), current.progress(), deep=deep)
    lines = [f"verified {report.path}",
             f"sha256   {report.sha256} matches the sidecar",
             f"members  {report.files} files, {report.dirs} folders, {report.symlinks} symlinks "
             f"({human_bytes(report.bytes)})" + (" match the manifest" if report.has_manifest else "")]
    lines += [f"note     {note}" for note in report.notes]
    emit(report.to_dict(), lines)


@backup_app.command("restore")
def restore(
    archive: str = typer.Argument(..., help="Archive path, or its name in backups/"),
    to: Path = typer.Option(..., "--to", help="Folder to restore into (an existing one is kept as DIR.rollback.*)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    member_root: str = typer.Option(None, "--member-root",
                                    help="Folder inside the archive to restore (default: library; legacy archives: "
                                         "detected)."),
    database: bool = typer.Option(False, "--database",
                                  help="Also replace the workspace database with the dump the archive holds."),
) -> None:
    """Verify the archive, extract it safely beside DIR, and swap it in by rename.

    Example: mobius backup restore mobius_library_20261125T230000Z.tar.zst --to ./uploads --yes
    """
    path = _archive(archive)
    target = to.expanduser().absolute()
    replacing = " (the current folder is moved to a .rollback folder)" if target.exists() else ""
    also = " and replace the database (dumped first)" if database else ""
    if not confirm(f"restore {path.name} into {target}{replacing}{also}?", yes=yes):
        raise typer.Abort()
    backup = _backup()
    result = backup.restore_backup(current.workspace(), path, target, member_root=member_root or backup.LIBRARY_ROOT,
                                   database=database, progress=current.progress())
    lines = [f"restored {result.files} files, {result.dirs} folders, {result.symlinks} symlinks "
             f"({human_bytes(result.bytes)}) into {result.to}"]
    if result.rollback:
        lines.append(f"previous content kept in {result.rollback}")
    if database:
        lines.append(f"database {current.workspace().database_url} restored from the archive's dump")
    lines += [f"note     {note}" for note in result.notes]
    emit(result.to_dict(), lines)


@backup_app.command("test-restore")
def test_restore(
    archive: str = typer.Argument(..., help="Archive path, or its name in backups/"),
    scratch: Path = typer.Option(None, "--scratch", help="Where to restore temporarily (default: beside the archive)"),
) -> None:
    """Restore into a temporary folder, compare every entry with the manifest, report, clean up.

    Example: mobius backup test-restore mobius_library_20261125T230000Z.tar.zst
    """
    report = _backup().test_restore(_archive(archive), scratch=scratch, progress=current.progress())
    lines = [f"test-restore of {report.archive.name}: OK",
             f"compared {report.compared} entries ({report.files} files, {human_bytes(report.bytes)}) with "
             + ("the manifest" if report.has_manifest else "the archive's own listing"),
             f"took     {report.seconds:.1f} s; the temporary restore was removed"]
    lines += [f"note     {note}" for note in report.notes]
    emit(report.to_dict(), lines)


@backup_app.command("list")
def list_command() -> None:
    """Backups in backups/, newest first, with size, files, created time and verification state.

    Example: mobius backup list --json
    """
    ws = current.workspace()
    infos = _backup().list_backups(ws.backups)
    lines = [f"{len(infos)} backup(s) in {ws.backups}"]
    for info in infos:
        files = "?" if info.files is None else str(info.files)
        lines.append(f"  {info.path.name}  {human_bytes(info.size):>10}  {files:>7} files  "
                     f"{info.created:%Y-%m-%d %H:%M:%S}Z  {info.state}")
    emit({"dir": ws.backups, "backups": [info.to_dict() for info in infos]}, lines)


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app."""
    app.add_typer(backup_app, name="backup")
