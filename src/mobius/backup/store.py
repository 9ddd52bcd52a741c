"""Where a repository copy goes: a local folder or an object store (s3://bucket/prefix through fsspec).

One small interface, the operations `copy` needs: list the names under a folder, the size of a
name, put a local file under a name so that it is either absent or whole (a folder: temp name,
fsync, rename, fsync; S3: a PUT is atomic per object), read a name back in pieces (to check it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from mobius.errors import EnvironmentProblem, InputError
from mobius.safety.atomic import TEMP_PREFIX, atomic_write

READ_CHUNK = 4 << 20


class RepositoryStore(Protocol):
    url: str

    def names(self, folder: str) -> set[str]:
        """File names (not paths) directly under `folder` ('index', 'snapshots', 'packs/ab')."""
        ...

    def size(self, key: str) -> int | None: ...

    def put_file(self, key: str, local: Path) -> None: ...

    def read(self, key: str) -> Iterator[bytes]: ...

    def sizes(self, folder: str) -> dict[str, int]:
        """Every file under `folder`, at any depth: its name and size, in one listing."""
        ...

    def local_root(self) -> Path | None:
        """The folder, when the store is one (then the copy is a repository every command opens)."""
        ...


class FolderStore:
    def __init__(self, root: Path):
        self.root = root
        self.url = str(root)

    def names(self, folder: str) -> set[str]:
        path = self.root / folder
        if not path.is_dir():
            return set()
        return {name for name in os.listdir(path) if not name.startswith(TEMP_PREFIX)}

    def size(self, key: str) -> int | None:
        try:
            return (self.root / key).stat().st_size
        except FileNotFoundError:
            return None

    def put_file(self, key: str, local: Path) -> None:
        final = self.root / key
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(local, "rb") as src, atomic_write(final, file_mode=0o600) as out:
            shutil.copyfileobj(src, out, READ_CHUNK)

    def read(self, key: str) -> Iterator[bytes]:
        with open(self.root / key, "rb") as handle:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            while chunk := handle.read(READ_CHUNK):
                yield chunk

    def local_root(self) -> Path | None:
        return self.root

    def sizes(self, folder: str) -> dict[str, int]:
        found: dict[str, int] = {}
        for parent, _, names in os.walk(self.root / folder):
            for name in names:
                if not name.startswith(TEMP_PREFIX):
                    with contextlib.suppress(FileNotFoundError):
                        found[name] = os.stat(os.path.join(parent, name)).st_size
        return found


class ObjectStore:
    """s3://bucket/prefix through fsspec (s3fs); endpoint and credentials as the media capability reads them."""

    def __init__(self, url: str, storage_options: dict[str, object]):
        try:
            import fsspec
            import s3fs  # noqa: F401 - only to know whether the extra is installed
        except ImportError:
            raise EnvironmentProblem("an s3:// repository needs the s3fs package",
                                     hint="pip install s3fs") from None
        self.url = url.rstrip("/")
        self.options = dict(storage_options)  # no secret in them (credentials come from the AWS chain)
        self.fs = fsspec.filesystem("s3", **storage_options)
        self.base = self.url[len("s3://"):]
        bucket = self.base.split("/", 1)[0]
        try:
            exists = self.fs.exists(bucket)
        except Exception as exc:  # noqa: BLE001 - botocore/aiohttp: no endpoint, no credentials
            raise InputError(f"cannot reach {self.url}: {exc}", hint="check MOBIUS_S3_ENDPOINT_URL and the "
                             "AWS credentials") from None
        if not exists:
            raise InputError(f"bucket {bucket} does not exist", hint="create it first, or fix the URL")

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}"

    def names(self, folder: str) -> set[str]:
        try:
            return {Path(p).name for p in self.fs.ls(self._path(folder), detail=False)}
        except FileNotFoundError:
            return set()

    def size(self, key: str) -> int | None:
        try:
            return int(self.fs.info(self._path(key))["size"])
        except FileNotFoundError:
            return None

    def put_file(self, key: str, local: Path) -> None:
        self.fs.put_file(str(local), self._path(key))

    def read(self, key: str) -> Iterator[bytes]:
        with self.fs.open(self._path(key), "rb", block_size=READ_CHUNK) as handle:
            while chunk := handle.read(READ_CHUNK):
                yield chunk

    def local_root(self) -> Path | None:
        return None

    def sizes(self, folder: str) -> dict[str, int]:
        """Every object under `folder`, at any depth: its name (not key) and size, in one listing."""
        try:
            found = self.fs.find(self._path(folder), detail=True)
        except FileNotFoundError:
            return {}
        return {Path(key).name: int(info.get("size", 0)) for key, info in found.items()}

    def put_bytes(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(key), data)

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            return None

    def get_file(self, key: str, local: Path) -> None:
        """The object into `local` atomically (temp name in the same folder, fsync, rename)."""
        local.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with atomic_write(local, file_mode=0o600) as out:
            for chunk in self.read(key):
                out.write(chunk)

    def delete(self, key: str) -> None:
        """Remove the object; an absent one is not an error (a second prune may have removed it)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(key))


def open_store(target: str, storage_options: dict[str, object] | None = None) -> RepositoryStore:
    """A folder path or an s3:// URL."""
    if target.startswith("s3://"):
        return ObjectStore(target, storage_options or {})
    if "://" in target:
        raise InputError(f"{target}: only folders and s3:// repositories are supported", hint="e.g. s3://bucket/mobius")
    return FolderStore(Path(target).expanduser().absolute())
