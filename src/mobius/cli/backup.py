"""`mobius backup`: see mobius.backup."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mobius.cli.context import current
from mobius.cli.options import DRY_RUN, YES, changes, describe_dry_run
from mobius.cli.output import confirm, emit, say
from mobius.errors import InputError
from mobius.safety.diskspace import human_bytes

MAX_LISTED = 20  # objects a dry run names on the terminal (--json: all)

if TYPE_CHECKING:
    from mobius.config import Workspace

backup_app = typer.Typer(help="Verified backups of the library: archives and an incremental snapshot repository "
                              "(create, list, verify, restore, test-restore, prune, export, copy).",
                         no_args_is_help=True)


def _backup():  # noqa: ANN202
    """The backup library, imported when a backup command runs (keeps every other command's start-up light)."""
    from mobius import backup

    return backup


def _snapshot(name: str) -> str | None:
    """The snapshot id `name` names (an id or unique prefix in backups/snapshots), unless it is an archive file."""
    path = Path(name).expanduser()
    if path.is_file() or "/" in name or name.endswith((".tar", ".zst", ".gz", ".tgz")):
        return None
    if name == _backup().LATEST:
        newest = _backup().latest_point(current.workspace())
        return newest.name if newest.kind == _backup().SNAPSHOT else None
    return _backup().find_snapshot(current.workspace(), name)


def _archive(name: str) -> Path:
    """An archive path, or a name in the workspace's backups/ (only then is a workspace needed)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    if name == _backup().LATEST:
        return Path(_backup().latest_backup(current.workspace()))
    return _backup().resolve_archive(current.workspace(), name)


def _existing_archive(name: str) -> Path:
    """`_archive`, refused (exit 1) when no file is there: a dry run names what it would restore."""
    path = _archive(name)
    if not path.is_file():
        raise InputError(f"no snapshot or archive named {name} (looked for {path})",
                         hint="`mobius backup list` shows the backups")
    return path


def _workspace_if_any() -> Workspace | None:
    """The workspace a check of an archive is recorded in, or None: outside one, an archive verifies unrecorded."""
    from mobius.config import find_workspace_root, is_workspace  # here for start-up time

    return current.workspace() if is_workspace(find_workspace_root(current.workspace_option)) else None


@backup_app.command("create")
@changes
def create(keep: int = typer.Option(None, "--keep", help="Backups to keep (default MOBIUS_BACKUP_KEEP, 5)."),
           database: bool = typer.Option(True, "--database/--no-database",
                                         help="Include a checked dump of the workspace database."),
           snapshot: bool = typer.Option(False, "--snapshot",
                                         help="Write an incremental snapshot into the repository (the default; "
                                              "kept for scripts written before it was)."),
           archive: bool = typer.Option(False, "--archive",
                                        help="Write one full self-contained archive (.tar.zst + .sha256) "
                                             "instead of a snapshot, as releases before snapshots did."),
           force_read: bool = typer.Option(False, "--force-read",
                                           help="Snapshots: read every file, even those unchanged "
                                                "(size, mtime, inode, ctime) since the last snapshot.")) -> None:
    """Back up the library, the workspace .env and a database dump: an incremental snapshot (checked before it
    is recorded), or with --archive one full archive (verified, then retention).

    Example: mobius backup create
    Example: mobius backup create --archive --keep 5
    """
    from mobius.ops.plain import run_step

    ws = current.workspace()
    if snapshot and archive:
        raise typer.BadParameter("--snapshot and --archive exclude each other (a snapshot is the default)")
    if not archive:
        if keep is not None and keep < 1:
            raise InputError(f"--keep must be at least 1, not {keep}", hint="the new snapshot always stays")
        say(f"snapshot of {ws.library} into the repository in {ws.backups}")
        made = run_step(ws, "backup.snapshot", "backup.snapshot", {"database": database, "force_read": force_read},
                        progress=current.progress())
        lines = [f"snapshot {made.id}" + (f" (parent {made.parent})" if made.parent else ""),
                 f"files    {made.files} ({human_bytes(made.bytes)}): {made.new_files} new "
                 f"({human_bytes(made.new_bytes)}), {made.reused_files} reused "
                 f"({human_bytes(made.reused_bytes)}); {made.read_files} read",
                 f"stored   {human_bytes(made.stored_bytes)} in {len(made.packs)} new pack(s), "
                 f"each checked from the device; took {made.seconds:.1f} s"]
        out = made.to_dict()
        if keep is not None:
            pruned = _backup().prune_backups(ws, _backup().RetentionPolicy(last=keep), progress=current.progress())
            out["pruned"] = pruned.to_dict()
            lines.append(f"pruned   {len(pruned.removed)} snapshot(s) (--keep {keep}); "
                         f"{human_bytes(max(pruned.bytes_freed, 0))} freed")
        emit(out, lines)
        return
    if force_read:
        raise typer.BadParameter("--force-read applies to snapshots, not --archive")
    if "://" in ws.library:
        raise InputError(f"the library is at {ws.library}: a full archive needs a local folder",
                         hint="`mobius backup create` (a snapshot) backs up a library in s3://")
    say(f"backing up {ws.library} into {ws.backups}")
    result = run_step(ws, "backup.create", "backup.create", {"keep": keep, "database": database},
                      progress=current.progress())
    lines = [f"archive  {result.path}",
             f"files    {result.files} ({human_bytes(result.bytes)}; archive {human_bytes(result.archive_bytes)}, "
             f"{result.compression})",
             f"sha256   {result.sha256}",
             f"verified yes ({result.verify_seconds:.1f} s); total {result.seconds:.1f} s"]
    lines += [f"deleted  {path.name} (retention)" for path in result.deleted]
    emit(result.to_dict(), lines)


@backup_app.command("verify")
def verify(
    archive: str = typer.Argument(None, help="Archive path, its name in backups/, or a snapshot id "
                                  "(none: every snapshot in the repository)"),
    deep: bool = typer.Option(False, "--deep", help="Check every member again even when the archive's bytes "
                              "are unchanged since its members were last checked"),
    read_data: bool = typer.Option(False, "--read-data", help="Snapshots: re-read every byte of every pack "
                                   "they need (default: structure and references)"),
) -> None:
    """Check the archive against its .sha256 sidecar, then every member against the manifest (exit 2 if not).

    Every byte is read. An archive whose members all passed before and whose sha256 is unchanged since
    is not parsed again (same bytes, same result); --deep parses it anyway. A snapshot (or, with no
    argument, every snapshot) is checked for structure and references, or with --read-data every byte.

    ARCHIVE may be `latest`: the newest library backup of either kind.

    Example: mobius backup verify latest --read-data
    Needs first: mobius backup create --snapshot
    """
    snapshot = None if archive is None else _snapshot(archive)
    if archive is None or snapshot is not None:
        check = _backup().check_snapshot(current.workspace(), snapshot, read_data=read_data,
                                         progress=current.progress()).raise_if_failed()
        emit(check.to_dict(), [f"verified {len(check.snapshots)} snapshot(s) in {check.repository}",
                               f"files    {check.files} ({check.blobs} distinct contents) in {check.packs} pack(s)",
                               "data     " + (f"every byte of {check.packs_read} pack(s) re-read "
                                               f"({human_bytes(check.bytes_read)}), every blob matches"
                                               if read_data else "not read (--read-data reads every byte)")])
        return
    path, ws = _archive(archive), _workspace_if_any()
    report = (_backup().verify_backup(ws, path, deep=deep, progress=current.progress()) if ws else
              _backup().verify_archive(path, current.progress(), deep=deep).raise_if_failed())
    lines = [f"verified {report.path}",
             f"sha256   {report.sha256} matches the sidecar",
             f"members  {report.files} files, {report.dirs} folders, {report.symlinks} symlinks "
             f"({human_bytes(report.bytes)})" + (" match the manifest" if report.has_manifest else "")]
    lines += [f"note     {note}" for note in report.notes]
    emit(report.to_dict(), lines)


@backup_app.command("restore")
@changes
def restore(
    archive: str = typer.Argument(..., help="Archive path, its name in backups/, a snapshot id, or latest"),
    to: str = typer.Option(..., "--to", help="Folder to restore into (an existing one is kept as DIR.rollback.*), "
                                           "or s3://bucket/prefix (a snapshot only)"),
    yes: bool = YES,
    member_root: str = typer.Option(None, "--member-root",
                                    help="Folder inside the archive to restore (default: library; legacy archives: "
                                         "detected)."),
    database: bool = typer.Option(False, "--database",
                                  help="Also replace the workspace database with the dump the archive holds."),
    dry_run: bool = DRY_RUN,
) -> None:
    """Verify the archive, extract it safely beside DIR, and swap it in by rename; or write a snapshot's files
    into s3://bucket/prefix (changed and missing objects uploaded, extra ones deleted, the listing checked).

    Example: mobius backup restore latest --to ./uploads --yes
    Example: mobius backup restore latest --to s3://media/uploads --dry-run
    Needs first: mobius backup create
    """
    from mobius.backup.object_target import names_object_storage

    if names_object_storage(to):
        _restore_to_objects(archive, to, yes=yes, member_root=member_root, database=database, dry_run=dry_run)
        return
    snapshot = _snapshot(archive)
    path = None if snapshot else _existing_archive(archive)  # one line, exit 1, dry run or not
    if dry_run:
        describe_dry_run(restore, (), {"archive": snapshot or str(path), "to": to, "member_root": member_root,
                                       "database": database})
        return
    target = Path(to).expanduser().absolute()
    replacing = " (the current folder is moved to a .rollback folder)" if target.exists() else ""
    also = " and replace the database (dumped first)" if database else ""
    what = f"snapshot {snapshot}" if snapshot else path.name
    if not confirm(f"restore {what} into {target}{replacing}{also}?", yes=yes):
        raise typer.Abort()
    from mobius.ops.plain import run_step

    if snapshot and member_root:
        raise typer.BadParameter("--member-root applies to archives; a snapshot restores its library")
    result = run_step(current.workspace(), "backup.restore", "backup.restore",
                      {"archive": None if snapshot else str(Path(path).absolute()), "snapshot": snapshot,
                       "to": str(target), "member_root": member_root, "database": database},
                      progress=current.progress())
    lines = [f"restored {result.files} files, {result.dirs} folders, {result.symlinks} symlinks "
             f"({human_bytes(result.bytes)}) into {result.to}"]
    if result.rollback:
        lines.append(f"previous content kept in {result.rollback}")
    if database:
        lines.append(f"database {current.workspace().database_url} restored from the archive's dump")
    lines += [f"note     {note}" for note in result.notes]
    emit(result.to_dict(), lines)


def _restore_to_objects(archive: str, to: str, *, yes: bool, member_root: str | None, database: bool,
                        dry_run: bool) -> None:
    """`backup restore SNAPSHOT --to s3://bucket/prefix`: the target checked first (backup.object_target), then a
    plan printed (--dry-run) or the restore run as a one-step plan (recorded, undoable)."""
    ws = current.workspace()
    backup = _backup()
    target = backup.object_restore_target(ws, to)
    if member_root:
        raise InputError("--member-root applies to archives restored into a folder",
                         hint="a snapshot restores its library into s3://")
    snapshot = _snapshot(archive)
    if snapshot is None:
        _existing_archive(archive)  # names neither a snapshot nor an archive: that error, not "is an archive"
        raise InputError(f"{archive} is an archive: only a snapshot can be restored into {target.url}",
                         hint="restore the archive into a folder (--to DIR), or name a snapshot id")
    if dry_run:
        plan = backup.plan_restore_to_objects(ws, snapshot, target.url, progress=current.progress())
        overwrite = [rel for rel in plan.write if rel in plan.present]
        lines = [f"dry run: restore of snapshot {plan.snapshot} into {target.url}",
                 f"would upload {len(plan.write)} of {len(plan.wanted)} objects ({len(overwrite)} replacing "
                 f"different ones), leave {len(plan.unchanged)} as they are, delete {len(plan.delete)}"]
        lines += [f"  upload {rel}" for rel in plan.write[:MAX_LISTED]]
        lines += [f"  delete {rel}" for rel in plan.delete[:MAX_LISTED]]
        if len(plan.write) > MAX_LISTED or len(plan.delete) > MAX_LISTED:
            lines.append(f"  (the first {MAX_LISTED} of each; --json lists them all)")
        lines.append("nothing was changed")
        emit({"dry_run": True, "changed": False, **plan.to_dict()}, lines)
        return
    kept = ("the library's current content is kept as a snapshot first" if target.is_library else
            "objects there that the snapshot lacks are deleted and different ones replaced; no copy is kept")
    also = " and replace the database (dumped first)" if database else ""
    if not confirm(f"restore snapshot {snapshot} into {target.url}{' (the live library)' if target.is_library else ''}"
                   f" ({kept}){also}?", yes=yes):
        raise typer.Abort()
    from mobius.ops.plain import run_step

    result = run_step(ws, "backup.restore", "backup.restore-objects",
                      {"snapshot": snapshot, "to": target.url, "database": database}, progress=current.progress())
    lines = [f"restored {result.files} objects ({human_bytes(result.bytes)}) into {result.url}: {result.written} "
             f"written, {result.unchanged} already equal, {result.deleted} deleted; the listing checked after"]
    if result.previous:
        lines.append(f"previous content kept as snapshot {result.previous}")
    if database:
        lines.append(f"database {ws.database_url} restored from the snapshot's dump")
    emit(result.to_dict(), lines)


@backup_app.command("test-restore")
def test_restore(
    archive: str = typer.Argument(..., help="Archive path, its name in backups/, a snapshot id, or latest"),
    scratch: Path = typer.Option(None, "--scratch", help="Where to restore temporarily (default: beside the archive)"),
) -> None:
    """Restore into a temporary folder, compare every entry with the manifest, report, clean up.

    Example: mobius backup test-restore latest
    Needs first: mobius backup create --snapshot
    """
    snapshot = _snapshot(archive)
    if snapshot:
        report = _backup().test_restore_snapshot(current.workspace(), snapshot, scratch=scratch,
                                                 progress=current.progress())
    else:
        path, ws = _archive(archive), _workspace_if_any()
        report = (_backup().test_restore_backup(ws, path, scratch=scratch, progress=current.progress()) if ws else
                  _backup().test_restore(path, scratch=scratch, progress=current.progress()))
    report.raise_if_failed()
    lines = [f"test-restore of {f'snapshot {snapshot}' if snapshot else report.archive.name}: OK",
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
    snapshots = list(reversed(_backup().snapshot_repository(ws).headers()))
    lines = [f"{len(infos)} backup(s) in {ws.backups}"]
    for info in infos:
        files = "?" if info.files is None else str(info.files)
        lines.append(f"  {info.path.name}  {human_bytes(info.size):>10}  {files:>7} files  "
                     f"{info.created:%Y-%m-%d %H:%M:%S}Z  {info.state}")
    if snapshots:
        lines.append(f"{len(snapshots)} snapshot(s) in the repository (new / reused since the repository held them)")
    for snap in snapshots:
        lines.append(f"  {snap.id}  {snap.files:>7} files {human_bytes(snap.bytes):>10}  "
                     f"new {snap.new_files} ({human_bytes(snap.new_bytes)})  reused {snap.reused_files} "
                     f"({human_bytes(snap.reused_bytes)})  stored {human_bytes(snap.stored_bytes)}")
    emit({"dir": ws.backups, "backups": [info.to_dict() for info in infos],
          "snapshots": [snap.to_dict() for snap in snapshots]}, lines)


@backup_app.command("prune")
@changes
def prune(keep_last: int = typer.Option(0, "--keep-last", help="Keep the N newest snapshots."),
          keep_hourly: int = typer.Option(0, "--keep-hourly", help="Keep the newest snapshot of each of the last N "
                                          "hours that have one."),
          keep_daily: int = typer.Option(0, "--keep-daily", help="... of each of the last N days."),
          keep_weekly: int = typer.Option(0, "--keep-weekly", help="... of each of the last N ISO weeks."),
          keep_monthly: int = typer.Option(0, "--keep-monthly", help="... of each of the last N months."),
          dry_run: bool = DRY_RUN) -> None:
    """Forget snapshots the policy does not keep, then remove content no remaining snapshot needs (crash-safe).

    Example: mobius backup prune --keep-last 5 --keep-daily 7
    Needs first: mobius backup create --snapshot
    """
    backup = _backup()
    policy = backup.RetentionPolicy(last=keep_last, hourly=keep_hourly, daily=keep_daily, weekly=keep_weekly,
                                    monthly=keep_monthly)
    result = backup.prune_backups(current.workspace(), policy, dry_run=dry_run, progress=current.progress())
    verb = "would remove" if dry_run else "removed"
    lines = [f"kept     {len(result.kept)} snapshot(s)", f"{verb:<8} {len(result.removed)} snapshot(s)"
             + (f": {', '.join(result.removed[:10])}" if result.removed else "")]
    if not dry_run:
        lines.append(f"packs    {result.packs_removed} removed ({result.packs_repacked} repacked into "
                     f"{result.packs_written}); {human_bytes(max(result.bytes_freed, 0))} freed")
    emit(result.to_dict(), lines)


@backup_app.command("export")
@changes
def export(snapshot: str = typer.Argument(..., help="Snapshot id (or a unique prefix, or latest)"),
           out: Path = typer.Option(..., "--out", help="The archive to write (.tar.zst); its .sha256 goes beside it")
           ) -> None:
    """Write a snapshot as one self-contained .tar.zst archive with a .sha256 sidecar (checked before it is named).

    Example: mobius backup export latest --out mobius-export.tar.zst && sha256sum -c mobius-export.tar.zst.sha256
    Needs first: mobius backup create --snapshot
    """
    result = _backup().export_backup(current.workspace(), snapshot, out, progress=current.progress())
    emit(result.to_dict(), [f"exported snapshot {result.snapshot} to {result.path}",
                            f"files    {result.files} ({human_bytes(result.bytes)}; archive "
                            f"{human_bytes(result.archive_bytes)})",
                            f"sha256   {result.sha256} (in {result.sidecar.name}; every member checked)"])


@backup_app.command("copy")
@changes
def copy(snapshots: list[str] = typer.Argument(None, help="Snapshot ids (default: every snapshot)"),
         to: str = typer.Option(..., "--to", help="Another repository: a folder, or s3://bucket/prefix")) -> None:
    """Copy snapshots and the packs they need into another repository (only what it lacks), verified after.

    Example: mobius backup copy --to ../offsite-backups   # or s3://bucket/prefix
    Needs first: mobius backup create --snapshot
    """
    result = _backup().copy_backups(current.workspace(), to, snapshots or None, progress=current.progress())
    emit(result.to_dict(), [f"copied   {result.snapshots_copied} of {len(result.snapshots)} snapshot(s) to {result.to}",
                            f"packs    {result.packs_copied} sent ({human_bytes(result.bytes_copied)}), "
                            f"{result.packs_needed - result.packs_copied} already there",
                            "verified every snapshot read back; every pack sent re-read, sha256 = its name"])


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app."""
    app.add_typer(backup_app, name="backup")
