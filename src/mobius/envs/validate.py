"""`env validate NAME`: can this environment run? Each check with its evidence; never raises for a failure.

Settings parse (loading the environment did that), folders exist or can be created and are
writable, the database answers and its schema version, an s3:// library lists + writes + deletes
a probe object, free disk, and the codecs the renderer needs (PyAV: libx264 and aac encoders).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mobius.config import Workspace, is_url, mask_text
from mobius.errors import MobiusError
from mobius.results import Check, Report, at_least, failed, passed
from mobius.safety.diskspace import disk_space, existing_ancestor, human_bytes
from mobius.safety.places import backups_layout_problem
from mobius.safety.stamps import new_id

RENDER_CODECS = ("libx264", "aac")


def check_folder(name: str, folder: Path) -> Check:
    """Exists and takes a probe file, or its nearest existing ancestor would let us create it."""
    try:
        if folder.exists():
            if not folder.is_dir():
                return failed(name, str(folder), detail="exists and is not a folder")
            with tempfile.NamedTemporaryFile(prefix=".mobius-tmp-probe-", dir=folder):
                pass
            return passed(name, str(folder), detail="exists, writable (probe file written and removed)")
        parent = existing_ancestor(folder)
        if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
            return passed(name, str(folder), detail=f"does not exist yet; can be created under {parent}")
        return failed(name, str(folder), detail=f"does not exist and {parent} is not writable")
    except OSError as exc:
        return failed(name, str(folder), detail=f"not writable: {exc.strerror or exc}")


def check_backups_layout(ws: Workspace) -> Check:
    """The backups folder lies outside the library (inside, a backup archives itself and a restore loses it)."""
    problem = backups_layout_problem(ws.library, ws.backups)
    if problem is not None:
        return failed("backups outside the library", str(ws.backups), threshold=f"outside {ws.library}",
                      detail=f"{problem}; set MOBIUS_BACKUP_DIR to a folder outside MOBIUS_LIBRARY_DIR")
    return passed("backups outside the library", str(ws.backups), detail=f"not inside {ws.library}")


def check_database(ws: Workspace) -> Check:
    from mobius.db import database_status

    try:
        status = database_status(ws)
    except MobiusError as exc:
        return failed("database", mask_text(ws.database_url), detail=mask_text(exc.message))
    except Exception as exc:  # noqa: BLE001 - any driver error: the database is not usable
        return failed("database", mask_text(ws.database_url), detail=mask_text(f"{type(exc).__name__}: {exc}"))
    pending = len(status.pending)
    return passed("database", f"schema version {status.current_version}", source=status.database,
                  detail=f"reachable ({status.engine}); {pending} pending migration(s)")


def check_s3_library(ws: Workspace) -> Check:
    """List, write and delete a probe object under the library prefix."""
    url = ws.library.rstrip("/")
    try:
        import fsspec

        from mobius.media.destination import s3_storage_options

        fs = fsspec.filesystem("s3", **s3_storage_options(ws))
        path = url[len("s3://"):]
        fs.ls(path.split("/", 1)[0])
        probe = f"{path}/.mobius-probe-{new_id('p')}"
        fs.pipe_file(probe, b"mobius probe")
        fs.rm_file(probe)
    except ImportError:
        return failed("library (s3)", url, detail="s3fs is not installed (pip install 'mobius[s3]')")
    except Exception as exc:  # noqa: BLE001 - any storage error: the library is not usable
        text = str(exc).strip().splitlines()
        return failed("library (s3)", url, detail=f"{type(exc).__name__}: {text[0] if text else ''}")
    return passed("library (s3)", url, detail="listed, wrote and deleted a probe object")


def check_codecs() -> Check:
    try:
        import av

        missing = []
        for name in RENDER_CODECS:
            try:
                av.codec.Codec(name, "w")
            except Exception:  # noqa: BLE001 - PyAV raises its own UnknownCodecError
                missing.append(name)
    except ImportError:
        return failed("codecs", None, detail="PyAV is not installed")
    if missing:
        return failed("codecs", ", ".join(missing), detail="encoders missing from PyAV's FFmpeg")
    return passed("codecs", ", ".join(RENDER_CODECS), source=f"PyAV {av.__version__}", detail="encoders present")


def check_free_disk(ws: Workspace) -> Check:
    minimum = ws.settings.deploy_min_free_mb * 1024 * 1024
    free, _total = disk_space(ws.backups)
    return at_least("free disk", free, minimum, unit="bytes", source=str(ws.backups),
                    detail=f"{human_bytes(free)} free, MOBIUS_DEPLOY_MIN_FREE_MB={ws.settings.deploy_min_free_mb}")


def validate_environment(ws: Workspace, *, codecs: bool = True) -> Report:
    """Every check of one environment, each with its evidence."""
    report = Report(f"environment {ws.environment or '(workspace)'}")
    report.add(passed("settings", str(ws.env_file), detail="every setting parses"))
    if is_url(ws.library):
        report.add(check_s3_library(ws))
    else:
        report.add(check_folder("library folder", Path(ws.library)))
    report.add(check_folder("backups folder", ws.backups))
    report.add(check_backups_layout(ws))
    report.add(check_database(ws))
    report.add(check_free_disk(ws))
    if codecs:
        report.add(check_codecs())
    return report
