"""Where a migration writes: one small interface, one backend per file (restic's backends).

`local_destination.LocalDestination` writes to a folder; `fsspec_destination.FsspecDestination`
to object storage (s3://) through fsspec. The migration, its verification and its journal use
only this interface, so both targets take the same code path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mobius.config import Workspace, is_url
from mobius.errors import EnvironmentProblem, InputError


@dataclass(frozen=True, slots=True)
class Stored:
    """An entry as the destination holds it; `token` changes whenever its content could have.

    Local folders: "<mtime_ns>:<inode>" (and `ctime_ns`, which no write can keep). Object storage:
    the object's ETag.
    """

    path: str
    kind: str
    size: int = 0
    token: str = ""
    link: str | None = None
    ctime_ns: int | None = None


class Writer(Protocol):
    """One file being written. Nothing is visible under the final name before `publish`
    (object storage: a PUT is atomic, so the object appears whole at `seal`)."""

    def write(self, data: memoryview) -> None: ...

    def seal(self, mode: int, mtime_ns: int) -> None:
        """Make the written bytes durable (fsync / finished upload), with mode and mtime."""

    def read_back(self, on_bytes: Callable[[int], None] | None = None) -> str:
        """sha256 of what the storage now holds, read past any cache of ours."""

    def publish(self) -> Stored: ...

    def abort(self) -> None: ...


class Destination(Protocol):
    url: str
    kind: str
    supports_links: bool

    def exists(self) -> bool: ...

    def listing(self) -> dict[str, Stored]:
        """Every entry under the root except our temp files, without reading contents."""

    def remove_temps(self) -> int:
        """Delete temp files a killed run left behind; returns how many."""

    def prepare(self) -> str:
        """Create the root (mode 755) and prove it writable; returns the evidence."""

    def space(self) -> tuple[int, int] | None:
        """(free, total) bytes, or None when the storage does not say."""

    def make_dir(self, path: str, mode: int) -> Stored: ...

    def make_link(self, path: str, target: str) -> Stored: ...

    def writer(self, path: str) -> Writer: ...

    def read(self, path: str, on_bytes: Callable[[int], None] | None = None) -> str:
        """sha256 of a stored file, read past the page cache where there is one."""

    def remove(self, path: str) -> None: ...

    def sync(self, paths: set[str]) -> None:
        """Make earlier publishes of these paths durable (fsync their folders)."""


def open_destination(target: str, ws: Workspace) -> Destination:
    """The backend for `target`: a local folder (relative to the workspace) or an s3:// URL."""
    if is_url(target):
        scheme = target.split("://", 1)[0]
        if scheme != "s3":
            raise InputError(f"unsupported target {target}", hint="use a local folder or s3://bucket/prefix")
        try:
            import s3fs  # noqa: F401 - imported only to know whether the extra is installed
        except ImportError:
            raise EnvironmentProblem("s3 targets need the s3fs package",
                                     hint="pip install 'mobius[s3]'") from None
        from mobius.media.fsspec_destination import FsspecDestination

        return FsspecDestination(target, s3_storage_options(ws))
    from mobius.media.local_destination import LocalDestination

    value = target[len("file://"):] if target.startswith("file://") else target
    return LocalDestination(Path(os.path.abspath(ws.resolve(value))))


def s3_storage_options(ws: Workspace) -> dict[str, object]:
    """fsspec options for S3: the endpoint comes from the setting MOBIUS_S3_ENDPOINT_URL, else
    AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL; credentials from the usual AWS chain."""
    endpoint = (ws.settings.s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
                or os.environ.get("AWS_ENDPOINT_URL"))
    options: dict[str, object] = {"use_listings_cache": False, "skip_instance_cache": True,
                                  "config_kwargs": {"connect_timeout": 10, "retries": {"max_attempts": 3}}}
    if endpoint:
        options["endpoint_url"] = endpoint
    return options
