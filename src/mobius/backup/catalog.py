"""The backups folder: archive names, sidecars, each backup's own log, listing and retention.

A backup is three files that live and die together:
- `<name>` the archive (`<prefix>_<UTC stamp>.tar.zst`),
- `<name>.sha256` its sidecar in `sha256sum` format (`sha256sum -c` works from the folder),
- `<name>.log.jsonl` its log: one JSON event per line (created, each verify, test-restore,
  restore). `list` reads the verification state from the last verify event. Lines are appended
  with one write each and fsynced; a torn last line after a crash is ignored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobius.backup.compression import ARCHIVE_EXTENSIONS
from mobius.errors import InputError
from mobius.log import get_logger
from mobius.results import to_jsonable
from mobius.safety.atomic import TEMP_PREFIX, atomic_write_text, fsync_dir
from mobius.safety.checksums import read_checksum_file, write_checksum_file
from mobius.stamps import utc_iso

SIDECAR_SUFFIX = ".sha256"
LOG_SUFFIX = ".log.jsonl"
VERIFY_EVENTS = ("backup.verified", "backup.verify_failed")
NAME = re.compile(r"^(?P<prefix>.+)_(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?(?P<ext>\.tar\.zst|\.tar\.gz|\.tgz|\.tar)$")


def sidecar_path(archive: Path) -> Path:
    return archive.with_name(archive.name + SIDECAR_SUFFIX)


def log_path(archive: Path) -> Path:
    return archive.with_name(archive.name + LOG_SUFFIX)


def is_archive_name(name: str) -> bool:
    return name.endswith(ARCHIVE_EXTENSIONS) and not name.startswith(".")


def write_sidecar(archive: Path, sha256: str) -> None:
    write_checksum_file(sidecar_path(archive), [(sha256, archive.name)])


def read_sidecar(archive: Path) -> str | None:
    """The digest the sidecar records for `archive`; None when there is no sidecar."""
    sidecar = sidecar_path(archive)
    if not sidecar.is_file():
        return None
    entries = list(read_checksum_file(sidecar))
    for digest, name in entries:
        if name.lstrip("*") in (archive.name, str(archive)) or Path(name).name == archive.name:
            return digest
    if len(entries) == 1:
        return entries[0][0]
    raise InputError(f"{sidecar} has no line for {archive.name}", hint="regenerate it with sha256sum")


_stamp_now = utc_iso  # the one stamp format (mobius.stamps)


def start_log(archive: Path, event: dict[str, Any]) -> None:
    """The backup's log, created whole (before the archive takes its final name)."""
    atomic_write_text(log_path(archive), json.dumps(to_jsonable({"at": _stamp_now(), **event})) + "\n")


def append_event(archive: Path, event: dict[str, Any]) -> None:
    """One more line in the backup's log; a read-only folder only costs the record, not the command."""
    line = (json.dumps(to_jsonable({"at": _stamp_now(), **event})) + "\n").encode()
    try:
        fd = os.open(log_path(archive), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        get_logger().warning("backup.log.unwritable", archive=str(archive), error=str(exc))


def read_events(archive: Path) -> Iterator[dict[str, Any]]:
    path = log_path(archive)
    if not path.is_file():
        return
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    yield event


LAST_ISSUED = ".mobius-last-archive"  # "<stamp> <n> <prefix>" of the last name issued in this folder


def new_archive_name(folder: Path, prefix: str, stamp: str, extension: str) -> str:
    """`<prefix>_<stamp><ext>`, with `-2`, `-3`... when a backup already took that second.

    Never a name issued before, even one whose archive retention has deleted since (three creates
    in one second, the first one's archive deleted by the second's retention): a name, and every
    record and log line naming it, means one archive. Called under the backups folder's lock.
    """
    taken = [int(m.group("n") or 1) for p in folder.iterdir()
             if (m := NAME.match(p.name)) and m.group("prefix") == prefix and m.group("stamp") == stamp]
    with contextlib.suppress(OSError, ValueError):
        last_stamp, last_n, last_prefix = (folder / LAST_ISSUED).read_text(encoding="utf-8").rstrip("\n").split(" ", 2)
        if (last_prefix, last_stamp) == (prefix, stamp):
            taken.append(int(last_n))
    n = max(taken, default=0) + 1
    atomic_write_text(folder / LAST_ISSUED, f"{stamp} {n} {prefix}\n")
    return f"{prefix}_{stamp}{'' if n == 1 else f'-{n}'}{extension}"


@dataclass
class BackupInfo:
    """One archive in a backups folder, as `list` shows it."""

    path: Path
    prefix: str | None
    created: dt.datetime
    size: int
    files: int | None
    bytes: int | None
    sha256: str | None
    state: str  # verified, failed, unverified
    checked_at: str | None

    @property
    def sort_key(self) -> tuple[dt.datetime, int]:
        match = NAME.match(self.path.name)
        return self.created, int(match.group("n") or 1) if match else 0

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.path.name, "prefix": self.prefix,
                "created": self.created.isoformat(timespec="seconds"), "size": self.size, "files": self.files,
                "bytes": self.bytes, "sha256": self.sha256, "state": self.state, "checked_at": self.checked_at}


def describe(archive: Path) -> BackupInfo:
    match = NAME.match(archive.name)
    st = archive.stat()
    if match:
        created = dt.datetime.strptime(match.group("stamp"), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    else:
        created = dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)
    files = total = None
    state, checked_at = "unverified", None
    for event in read_events(archive):
        if event.get("event") == "backup.created":
            files, total = event.get("files"), event.get("bytes")
        elif event.get("event") in VERIFY_EVENTS:
            state = "verified" if event["event"] == "backup.verified" else "failed"
            checked_at = event.get("at")
            files = event.get("files", files)
    try:
        sha256 = read_sidecar(archive)
    except InputError:
        sha256 = None
    return BackupInfo(path=archive, prefix=match.group("prefix") if match else None, created=created,
                      size=st.st_size, files=files, bytes=total, sha256=sha256, state=state, checked_at=checked_at)


def list_backups(folder: Path, prefix: str | None = None) -> list[BackupInfo]:
    """Every archive in `folder` (optionally only `prefix`'s), newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    infos = []
    for path in folder.iterdir():
        if is_archive_name(path.name) and path.is_file():
            info = describe(path)
            if prefix is None or info.prefix == prefix:
                infos.append(info)
    return sorted(infos, key=lambda i: i.sort_key, reverse=True)


def remove_backup_files(archive: Path) -> None:
    """Delete an archive together with its sidecar and its log."""
    for path in (archive, sidecar_path(archive), log_path(archive)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    fsync_dir(archive.parent)


def protected_names(folder: Path) -> set[str]:
    """Archives another capability needs kept (a rollback's backup): `retention-protected*.txt`, one name a line."""
    return {line.strip() for path in folder.glob("retention-protected*.txt")
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
_PINS: list[int] = []  # descriptors held open (with a shared flock) until this process ends


def pin_archive(archive: Path) -> None:
    """Mark `archive` as still being reported by this run: a shared flock that the kernel drops when the
    process ends (even on SIGKILL). Retention in other runs leaves a pinned archive alone."""
    import fcntl

    fd = os.open(archive, os.O_RDONLY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_SH)
    _PINS.append(fd)


def _pinned(archive: Path) -> bool:
    """True while a running process (this one included) pins `archive` (see pin_archive)."""
    import fcntl

    try:
        fd = os.open(archive, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    if any(os.path.samestat(os.fstat(fd), os.fstat(pin)) for pin in _PINS):
        os.close(fd)
        return True  # our own: we report it, so we never delete it (even when a sibling's is newer)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def apply_retention(folder: Path, prefix: str, keep: int) -> list[Path]:
    """Keep the `keep` newest `prefix` backups, those named in retention-protected*.txt and, always, the
    newest verified one; delete the rest.

    An archive another running create pinned (it is about to report it) is never deleted; a later
    run's retention removes it once that run has ended. Returns the archives deleted (each with its
    sidecar and log).
    """
    if keep < 1:
        raise InputError(f"--keep must be at least 1, not {keep}", hint="the new backup always stays")
    backups = list_backups(folder, prefix)
    kept = backups[:keep]
    protected = protected_names(folder)
    kept += [b for b in backups if b.path.name in protected and b not in kept]
    newest_verified = next((b for b in backups if b.state == "verified"), None)
    if newest_verified is not None and newest_verified not in kept:
        kept.append(newest_verified)
    deleted = []
    for info in backups:
        if info not in kept:
            if _pinned(info.path):
                get_logger().info("backup.retention.skipped", archive=str(info.path), reason="a running create")
                continue
            remove_backup_files(info.path)
            deleted.append(info.path)
            get_logger().info("backup.retention.deleted", archive=str(info.path), keep=keep)
    return deleted


def remove_leftovers(folder: Path, prefix: str) -> list[Path]:
    """Temp archives of dead processes and sidecars/logs whose archive is gone (a crash's leftovers)."""
    from mobius.safety.leftovers import sweep

    swept = sweep([folder])  # temp archives, dump scratch folders and temp dumps of killed runs
    removed = []
    for path in folder.iterdir():
        name = path.name
        if not name.startswith(TEMP_PREFIX):
            for suffix in (SIDECAR_SUFFIX, LOG_SUFFIX):
                base = name[: -len(suffix)] if name.endswith(suffix) else None
                match = NAME.match(base) if base else None
                if match and match.group("prefix") == prefix and not (folder / base).exists():
                    removed.append(path)
    for path in removed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            path.unlink()
        get_logger().info("backup.leftover.removed", path=str(path))
    return swept + removed
